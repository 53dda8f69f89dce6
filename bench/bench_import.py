"""Benchmark `dialer contacts import` end to end on PostgreSQL and SQLite.

Generates a messy CRM export (valid US numbers from real area codes in several formats, ~5%
duplicates, ~10% invalid or missing, names, emails, states, some time zones, CRM columns), then
runs the real CLI in a child process per import and reports wall time, rows/s and the child's peak
RSS. Results are recorded in docs/benchmarks.md ("Contact import").

    .venv/bin/python bench/bench_import.py                  # 1,000,000 rows, PG + SQLite
    .venv/bin/python bench/bench_import.py --rows 250000 --rows 1000000 --no-sqlite
    .venv/bin/python bench/bench_import.py --pg-url postgresql://u:p@host/db

Without --pg-url a throwaway PostgreSQL is started with tests/pgserver.py.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Real US area codes (NPA) in service.
AREA_CODES = [
    201, 202, 203, 205, 206, 207, 208, 209, 210, 212, 213, 214, 215, 216, 217, 218, 219, 224,
    225, 228, 229, 231, 234, 239, 240, 248, 251, 252, 253, 254, 256, 260, 262, 267, 269, 270,
    276, 281, 301, 302, 303, 304, 305, 307, 308, 309, 310, 312, 313, 314, 315, 316, 317, 318,
    319, 320, 321, 323, 325, 330, 334, 336, 337, 339, 347, 351, 352, 360, 361, 385, 386, 401,
    402, 404, 405, 406, 407, 408, 409, 410, 412, 413, 414, 415, 417, 419, 423, 424, 425, 430,
    432, 434, 435, 440, 442, 443, 469, 470, 475, 478, 479, 480, 484, 501, 502, 503, 504, 505,
    507, 508, 509, 510, 512, 513, 515, 516, 517, 518, 520, 530, 531, 540, 541, 551, 559, 561,
    562, 563, 567, 570, 571, 573, 574, 575, 580, 585, 586, 601, 602, 603, 605, 606, 607, 608,
    609, 610, 612, 614, 615, 616, 617, 618, 619, 620, 623, 626, 630, 631, 636, 641, 646, 650,
    651, 657, 660, 661, 662, 667, 678, 681, 682, 701, 702, 703, 704, 706, 707, 708, 712, 713,
    714, 715, 716, 717, 718, 719, 720, 724, 727, 731, 732, 734, 737, 740, 754, 757, 760, 763,
    765, 770, 772, 773, 774, 775, 779, 781, 785, 786, 801, 802, 803, 804, 805, 806, 808, 810,
    812, 813, 814, 815, 816, 817, 818, 828, 830, 831, 832, 843, 845, 847, 848, 850, 856, 857,
    858, 859, 860, 862, 863, 864, 865, 870, 878, 901, 903, 904, 906, 907, 908, 909, 910, 912,
    913, 914, 915, 916, 917, 918, 919, 920, 925, 928, 931, 936, 937, 940, 941, 947, 949, 951,
    952, 954, 956, 970, 971, 972, 973, 978, 979, 980, 985, 989,
]
FORMATS = ["({a}) {e}-{s}", "{a}-{e}-{s}", "{a}.{e}.{s}", "{a}{e}{s}", "+1{a}{e}{s}",
           "1-{a}-{e}-{s}", "+1 ({a}) {e}-{s}", "+1 {a} {e} {s}", " {a} {e} {s} ", "1 {a} {e}{s}"]
INVALID = ["12345", "555-CALL-NOW", "n/a", "", "(415) 555-01", "000-000-0000",
           "1234567890123456", "+44 20", "call me", "911", "(123) 456-7890", "0"]
FIRST = ["James", "Mary", "John", "Patricia", "Robert", "Jennifer", "Michael", "Linda", "David",
         "Elizabeth", "José", "Zoë", "Nguyen", "O'Brien"]
LAST = ["Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Müller",
        "Rodriguez", "Martinez", "Hernández"]
STATES = ["CA", "TX", "New York", "fl", "IL", "PA", "OH", "GA", "NC", "MI", "", "", "", ""]
ZONES = ["", "", "", "", "", "", "America/New_York", "Central", "PST", "bogus/zone"]
NOTES = ["", "", "call after 5pm", 'said "maybe", call back', "VIP, do not rush",
         "line one\nline two", '=HYPERLINK("http://x","y")']


def generate(path: Path, rows: int, seed: int = 7) -> None:
    rnd = random.Random(seed)
    recent: list[str] = []
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["Account ID", "First Name", "Last Name", "Phone Number", "Email", "State",
                    "Time Zone", "Notes", "Next Appointment", "Owner"])
        for i in range(rows):
            r = rnd.random()
            if r < 0.05 and recent:
                phone = rnd.choice(recent)
            elif r < 0.15:
                phone = rnd.choice(INVALID)
            else:
                a = rnd.choice(AREA_CODES)
                e = rnd.randint(200, 999)
                s = rnd.randint(0, 9999)
                phone = rnd.choice(FORMATS).format(a=a, e=f"{e:03d}", s=f"{s:04d}")
                if len(recent) < 5000:
                    recent.append(phone)
                else:
                    recent[rnd.randrange(5000)] = phone
            first, last = rnd.choice(FIRST), rnd.choice(LAST)
            w.writerow([f"ACC-{i:08d}", first, last, phone,
                        f"{first.lower()}.{last.lower()}{i}@example.com", rnd.choice(STATES),
                        rnd.choice(ZONES), rnd.choice(NOTES),
                        f"2025-{rnd.randint(1, 12):02d}-{rnd.randint(1, 28):02d} 10:00",
                        rnd.choice(["ana", "ben", "chloe"])])


def dialer(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dialer.cli.main", "--database-url", url, *args],
                          cwd=ROOT, capture_output=True, text=True, check=False)


def run_import(url: str, campaign: str, path: Path) -> dict[str, float]:
    """One import in a child process: wall time, the summary, and the child's peak RSS."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "dialer.cli.main", "--database-url", url, "contacts", "import",
         campaign, str(path), "--json"], cwd=ROOT, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    started = time.perf_counter()
    _pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    out = proc.stdout.read() if proc.stdout else ""
    err = proc.stderr.read() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"import failed: {err}")
    summary = json.loads(out)
    return {"wall_secs": wall, "rows_read": summary["rows_read"],
            "accepted": summary["accepted"], "elapsed_secs": summary["elapsed_secs"],
            "rows_per_sec": summary["rows_read"] / wall,
            "pipeline_rows_per_sec": summary["rows_per_sec"],
            "peak_rss_mb": usage.ru_maxrss / 1024}


async def _in_process(url: str, path: Path, stub_insert: bool) -> dict[str, float]:
    """The import in this process, timing the bulk inserts (or replacing them by nothing)."""
    from campaigns.db import storage
    from campaigns.db.engine import create_engine, session_factory
    from campaigns.importing import ImportOptions, import_contacts
    from campaigns.service import create_campaign

    real = storage.insert_contacts
    spent = {"insert": 0.0}

    async def timed(session: Any, table: Any) -> int:
        if stub_insert:
            return int(table.num_rows)
        t = time.perf_counter()
        try:
            return await real(session, table)
        finally:
            spent["insert"] += time.perf_counter() - t

    storage.insert_contacts = timed
    engine = create_engine(url)
    try:
        name = f"inproc-{time.time()}"
        async with session_factory(engine)() as session, session.begin():
            await create_campaign(session, name, {"from": "+14155550100", "connection_id": "1"})
        async with session_factory(engine)() as session:
            tx = await session.begin()
            t = time.perf_counter()
            summary = await import_contacts(session, name, path, ImportOptions())
            elapsed = time.perf_counter() - t
            await tx.rollback()
        return {"elapsed_secs": elapsed, "insert_secs": spent["insert"],
                "rows_per_sec": summary.rows_read / elapsed, "accepted": summary.accepted}
    finally:
        storage.insert_contacts = real
        await engine.dispose()


async def copy_ceiling(url: str, rows: int = 200_000) -> dict[str, float]:
    """Plain `COPY (FORMAT csv)` of contact-like rows (in phone order) into `contacts` and into a
    copy of it without its indexes, each in a rolled-back transaction: what the schema costs.
    (Since migration 0002 `contacts` has no foreign key left.)"""
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        cid = await conn.fetchval("INSERT INTO campaigns (name, status, from_number, "
                                  "connection_id, dial_settings, settings, hangup_requested, "
                                  "created_at, updated_at) VALUES ('ceiling', 'draft', "
                                  "'+14155550100', '1', '{}', '{}', false, now(), now()) "
                                  "RETURNING id")
        imp = await conn.fetchval("INSERT INTO contact_imports (campaign_id, file_name, columns, "
                                  "rows_read, accepted, invalid, duplicates, dnc_suppressed, "
                                  "tz_unknown, tz_ambiguous, created_at) VALUES "
                                  "($1, 'x', '[]', 0, 0, 0, 0, 0, 0, 0, now()) RETURNING id", cid)
        line = ('{c},{i},{n},"+1212{n:07d}","(212) {n}","","Ann","Lee","a@example.com","NY","",'
                '"[""America/New_York""]","number","{{""Account"":""A{n}"",""notes"":""call""}}",'
                '"queued",0,"2025-01-01 00:00:00","2025-01-01 00:00:00","2025-01-01 00:00:00"\n')
        data = "".join(line.format(c=cid, i=imp, n=n) for n in range(rows)).encode()
        from campaigns.db.storage import CONTACT_COLUMNS

        out = {}
        for label, setup in [
            ("contacts", None),
            ("no_indexes", "CREATE TABLE bench_copy (LIKE contacts INCLUDING DEFAULTS)"),
        ]:
            tx = conn.transaction()
            await tx.start()
            if setup:
                await conn.execute(setup)
            t = time.perf_counter()
            await conn.copy_to_table("contacts" if setup is None else "bench_copy",
                                     source=io.BytesIO(data), columns=list(CONTACT_COLUMNS),
                                     format="csv")
            out[label] = rows / (time.perf_counter() - t)
            await tx.rollback()
        await conn.execute("DELETE FROM campaigns WHERE id = $1", cid)
        return out
    finally:
        await conn.close()


def bench_db(label: str, url: str, files: dict[int, Path]) -> list[dict[str, object]]:
    for args in (["db", "upgrade"],):
        proc = dialer(url, *args)
        if proc.returncode != 0:
            raise SystemExit(proc.stderr)
    results = []
    for rows, path in files.items():
        name = f"bench-{rows}-{int(time.time() * 1000)}"
        proc = dialer(url, "campaign", "create", name, "--from", "+14155550100",
                      "--connection-id", "1")
        if proc.returncode != 0:
            raise SystemExit(proc.stderr)
        first = run_import(url, name, path)
        again = run_import(url, name, path)  # everything is a duplicate now
        results.append({"db": label, "rows": rows, "first": first, "reimport": again})
        print(f"{label:8s} {rows:>9,} rows: {first['wall_secs']:6.2f} s "
              f"{first['rows_per_sec']:>9,.0f} rows/s end to end (CLI process), "
              f"inside the import {first['pipeline_rows_per_sec']:>9,.0f} rows/s, "
              f"peak RSS {first['peak_rss_mb']:.0f} MB, accepted {first['accepted']:,}; "
              f"re-import {again['wall_secs']:.2f} s, accepted {again['accepted']}", flush=True)
    biggest = files[max(files)]
    timed = asyncio.run(_in_process(url, biggest, stub_insert=False))
    print(f"{label:8s} breakdown ({max(files):,} rows, in process): "
          f"{timed['elapsed_secs']:.2f} s, of which waiting on the bulk insert "
          f"{timed['insert_secs']:.2f} s", flush=True)
    stub = asyncio.run(_in_process(url, biggest, stub_insert=True))
    print(f"{label:8s} without the insert: {stub['elapsed_secs']:.2f} s, "
          f"{stub['rows_per_sec']:,.0f} rows/s (read, normalise, dedupe, DNC, zones, rows "
          "built)", flush=True)
    results.append({"db": label, "breakdown": timed, "no_insert": stub})
    if label == "postgres":
        ceiling = asyncio.run(copy_ceiling(url))
        print("postgres plain COPY of 200,000 contact rows: " + ", ".join(
            f"{k} {v:,.0f} rows/s" for k, v in ceiling.items()), flush=True)
        results.append({"db": label, "copy_ceiling": ceiling})
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, action="append", help="rows per file (repeatable)")
    ap.add_argument("--pg-url", help="PostgreSQL to use (default: a throwaway server)")
    ap.add_argument("--no-sqlite", action="store_true")
    ap.add_argument("--no-postgres", action="store_true")
    ap.add_argument("--json", help="write the results as JSON to this file")
    args = ap.parse_args()
    sizes = args.rows or [1_000_000]
    # A terminated run still stops its throwaway PostgreSQL (the `finally` below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    print(f"machine: {os.cpu_count()} cores, {platform.machine()}, Python "
          f"{platform.python_version()}, {time.strftime('%Y-%m-%d')}", flush=True)
    work = Path(tempfile.mkdtemp(prefix="bench-import-"))
    files = {}
    for rows in sizes:
        path = work / f"contacts-{rows}.csv"
        t = time.perf_counter()
        generate(path, rows)
        print(f"generated {rows:,} rows ({path.stat().st_size / 1e6:.0f} MB) in "
              f"{time.perf_counter() - t:.1f} s", flush=True)
        files[rows] = path
    results: list[dict[str, object]] = []
    server = None
    try:
        if not args.no_postgres:
            url = args.pg_url
            if url is None:
                from tests.pgserver import start_server

                server = start_server()
                url = server.url()
            results += bench_db("postgres", url, files)
        if not args.no_sqlite:
            results += bench_db("sqlite", f"sqlite:///{work / 'bench.db'}", files)
    finally:
        if server is not None:
            server.cleanup()
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
