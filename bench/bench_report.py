"""Benchmark: export a large campaign (default 1,000,000 contacts) to CSV and Parquet, from
PostgreSQL and SQLite, and print wall time and peak RSS of each export.

    .venv/bin/python bench/bench_report.py                      # both databases, 1M contacts
    .venv/bin/python bench/bench_report.py --db postgres --contacts 200000
    .venv/bin/python bench/bench_report.py --pg-url postgresql://u@host/db   # your own server
    .venv/bin/python bench/bench_report.py --db postgres --profile csv      # where time goes

Rows are generated inside the database (`INSERT ... SELECT generate_series` on PostgreSQL, a
recursive CTE on SQLite). Each export runs as `dialer report` in a fresh process, so its peak RSS
(from wait4) is the export's alone. Without --pg-url a throwaway PostgreSQL is started with
tests/pgserver.py. Results go to docs/benchmarks.md, section "Reports".
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Self

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import text
from sqlalchemy.engine import make_url

from campaigns.db.engine import create_engine
from campaigns.db.migrate import upgrade

CAMPAIGN = "bench"
HEADERS = ["Phone", "First Name", "Last Name", "Email", "Account", "Plan", "Notes"]
T0 = "2026-03-02 15:00:00"

# Shared pieces of the generator, written once for both dialects. `g` is the row number 1..N.
_STATUS = "CASE WHEN g % 10 = 0 THEN 'queued' ELSE 'done' END"
_ATTEMPTS = ("CASE WHEN g % 20 = 0 THEN 0 WHEN g % 10 = 0 THEN 1 "
             "ELSE 1 + (CASE WHEN g % 4 = 0 THEN 1 ELSE 0 END) "
             "+ (CASE WHEN g % 12 = 0 THEN 1 ELSE 0 END) END")
_OUTCOME = ("CASE WHEN g % 20 = 0 THEN NULL WHEN g % 10 = 0 THEN 'busy' ELSE "
            "(CASE g % 8 WHEN 0 THEN 'human' WHEN 1 THEN 'machine' WHEN 2 THEN 'no_answer' "
            "WHEN 3 THEN 'busy' WHEN 4 THEN 'human' WHEN 5 THEN 'failed' WHEN 6 THEN 'no_answer' "
            "ELSE 'invalid_number' END) END")
_TZ = ("CASE g % 3 WHEN 0 THEN '[\"America/New_York\"]' WHEN 1 THEN '[\"America/Chicago\"]' "
       "ELSE '[\"America/Los_Angeles\"]' END")
_NOTES = ("CASE WHEN g % 100 = 0 THEN '=HYPERLINK(\"http://x\",\"y\")' "
          "ELSE 'called back, \"later\" ' || g END")

PG_CONTACTS = f"""
INSERT INTO contacts (campaign_id, import_id, source_row, phone_e164, phone_raw, first_name,
  last_name, email, timezones, timezone_source, custom_fields, status, outcome, attempts,
  next_attempt_at, first_attempt_at, last_attempt_at, created_at, updated_at)
SELECT :cid, :iid, g + 1, '+1415' || lpad(g::text, 7, '0'), '(415) ' || lpad(g::text, 7, '0'),
  'First' || g, 'Last' || g, 'user' || g || '@example.com', ({_TZ})::jsonb, 'number',
  jsonb_build_object('Account', 'A-' || g, 'Plan', CASE WHEN g % 2 = 0 THEN 'gold' ELSE 'basic'
    END, 'Notes', {_NOTES}),
  s.status, s.outcome, s.attempts,
  CASE WHEN s.status = 'queued' THEN timestamp '{T0}' + interval '1 day' + g * interval '1 second'
  END,
  CASE WHEN s.attempts > 0 THEN timestamp '{T0}' + g * interval '3 second' END,
  CASE WHEN s.attempts > 0 THEN timestamp '{T0}' + g * interval '3 second'
    + (s.attempts - 1) * interval '1 hour' END,
  timestamp '{T0}', timestamp '{T0}'
FROM generate_series(1, :n) AS g,
  LATERAL (SELECT {_STATUS} AS status, {_OUTCOME} AS outcome, {_ATTEMPTS} AS attempts) AS s
"""

SQLITE_CONTACTS = f"""
WITH RECURSIVE seq(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM seq WHERE g < :n),
rows(g, status, outcome, attempts) AS (
  SELECT g, {_STATUS}, {_OUTCOME}, {_ATTEMPTS} FROM seq)
INSERT INTO contacts (campaign_id, import_id, source_row, phone_e164, phone_raw, first_name,
  last_name, email, timezones, timezone_source, custom_fields, status, outcome, attempts,
  next_attempt_at, first_attempt_at, last_attempt_at, created_at, updated_at)
SELECT :cid, :iid, g + 1, '+1415' || printf('%07d', g), '(415) ' || printf('%07d', g),
  'First' || g, 'Last' || g, 'user' || g || '@example.com', {_TZ}, 'number',
  json_object('Account', 'A-' || g, 'Plan', CASE WHEN g % 2 = 0 THEN 'gold' ELSE 'basic' END,
    'Notes', {_NOTES}),
  status, outcome, attempts,
  CASE WHEN status = 'queued' THEN datetime('{T0}', '+1 day', '+' || g || ' seconds') END,
  CASE WHEN attempts > 0 THEN datetime('{T0}', '+' || (g * 3) || ' seconds') END,
  CASE WHEN attempts > 0 THEN datetime('{T0}', '+' || (g * 3) || ' seconds',
    '+' || (attempts - 1) || ' hours') END,
  '{T0}', '{T0}'
FROM rows
"""

# One attempt row per (contact, n <= attempts); the last carries the contact's outcome.
_A_OUTCOME = "CASE WHEN n = c.attempts THEN c.outcome ELSE 'no_answer' END"
_A_ANSWERED = f"({_A_OUTCOME}) IN ('human', 'machine')"
_A_CAUSE = (f"CASE ({_A_OUTCOME}) WHEN 'busy' THEN 'user_busy' WHEN 'no_answer' THEN 'timeout' "
            "WHEN 'invalid_number' THEN 'not_found' WHEN 'failed' THEN 'unspecified' "
            "ELSE 'normal_clearing' END")
_A_SIP = (f"CASE ({_A_OUTCOME}) WHEN 'busy' THEN '486' WHEN 'no_answer' THEN '480' "
          "WHEN 'invalid_number' THEN '404' WHEN 'failed' THEN '503' ELSE '200' END")


def _attempts_sql(dialect: str) -> str:
    if dialect == "postgresql":
        dial = "c.first_attempt_at + (n - 1) * interval '1 hour'"
        plus = "{} + interval '{} second'"
        talk = "(c.id % 90 + 10) * interval '1 second'"
        series = "CROSS JOIN LATERAL generate_series(1, c.attempts) AS n"
        true, false = "true", "false"
    else:
        dial = "datetime(c.first_attempt_at, '+' || (n - 1) || ' hours')"
        plus = "datetime({}, '+{} seconds')"
        talk = None
        series = ("JOIN (SELECT 1 AS n UNION ALL SELECT 2 UNION ALL SELECT 3) AS ns "
                  "ON ns.n <= c.attempts")
        true, false = "1", "0"
    answered = plus.format(dial, 5)
    if talk is not None:
        ended_answered = f"{answered} + {talk}"
    else:
        ended_answered = f"datetime({answered}, '+' || (c.id % 90 + 10) || ' seconds')"
    return f"""
INSERT INTO call_attempts (contact_id, campaign_id, attempt_no, phone_e164, command_id,
  client_state, call_control_id, state, created_at, dial_sent_at, dial_sends, dialed_at,
  answered_at, ended_at, hangup_cause, hangup_source, sip_hangup_cause, amd_result,
  voicemail_left, message_played, outcome, updated_at)
SELECT c.id, c.campaign_id, n, c.phone_e164, 'cmd-' || c.id || '-' || n, 'cs',
  'v3:bench-' || c.id || '-' || n, 'ended', {dial}, {dial}, 1, {dial},
  CASE WHEN {_A_ANSWERED} THEN {answered} END,
  CASE WHEN {_A_ANSWERED} THEN {ended_answered} ELSE {plus.format(dial, 30)} END,
  {_A_CAUSE}, 'callee', {_A_SIP},
  CASE WHEN {_A_ANSWERED} THEN {_A_OUTCOME} END,
  CASE WHEN ({_A_OUTCOME}) = 'machine' AND c.id % 3 = 0 THEN {true} ELSE {false} END,
  CASE WHEN ({_A_OUTCOME}) = 'human' THEN {true} ELSE {false} END,
  {_A_OUTCOME}, {dial}
FROM contacts c {series}
WHERE c.campaign_id = :cid
"""


async def generate(url: str, n: int) -> tuple[int, int]:
    """Insert the campaign; returns (contacts, attempts)."""
    import json

    engine = create_engine(url)
    dialect = engine.dialect.name
    try:
        async with engine.begin() as conn:
            cid = (await conn.execute(text(
                "INSERT INTO campaigns (name, status, from_number, connection_id, dial_settings, "
                "settings, hangup_requested, created_at, updated_at, started_at) VALUES (:name, "
                "'running', '+14155550100', '1', '{}', '{}', false, :t0, :t0, :t0) RETURNING id"
            ), {"name": CAMPAIGN, "t0": _t0()})).scalar_one()
            iid = (await conn.execute(text(
                "INSERT INTO contact_imports (campaign_id, file_name, columns, phone_column, "
                "rows_read, accepted, invalid, duplicates, dnc_suppressed, tz_unknown, "
                "tz_ambiguous, created_at) VALUES (:cid, 'bench.csv', :cols, 'Phone', :n, :n, "
                "0, 0, 0, 0, 0, :t0) RETURNING id"
            ), {"cid": cid, "cols": json.dumps(HEADERS), "n": n, "t0": _t0()})).scalar_one()
            contacts_sql = PG_CONTACTS if dialect == "postgresql" else SQLITE_CONTACTS
            await conn.execute(text(contacts_sql), {"cid": cid, "iid": iid, "n": n})
            await conn.execute(text(_attempts_sql(dialect)), {"cid": cid})
            attempts = (await conn.execute(text(
                "SELECT count(*) FROM call_attempts WHERE campaign_id = :cid"), {"cid": cid}
            )).scalar_one()
        async with engine.connect() as conn:
            if dialect == "postgresql":
                conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
                await conn.execute(text("VACUUM ANALYZE"))
            else:
                await conn.execute(text("ANALYZE"))
                await conn.commit()
        return n, int(attempts)
    finally:
        await engine.dispose()


def _t0() -> object:
    from datetime import datetime

    return datetime.fromisoformat(T0)


@dataclass
class Run:
    db: str
    fmt: str
    seconds: float  # the whole `dialer report` process, start-up included
    export_seconds: float  # the export itself, as `dialer report` reports it
    peak_rss_mb: float
    python_cpu: float
    postgres_cpu: float | None
    size_mb: float
    rows: int


class BackendCpu:
    """CPU seconds used by the PostgreSQL backends serving database `dbname`, sampled from /proc
    while the export runs (a backend's counters vanish when it exits)."""

    def __init__(self, dbname: str | None) -> None:
        self.dbname = dbname
        self.seen: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _sample(self) -> None:
        tick = os.sysconf("SC_CLK_TCK")
        for pid in (int(p) for p in os.listdir("/proc") if p.isdigit()):
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
                if not cmd.startswith(b"postgres: ") or f" {self.dbname} ".encode() not in cmd:
                    continue
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            self.seen[pid] = (int(fields[11]) + int(fields[12])) / tick

    def _loop(self) -> None:
        while not self._stop.wait(0.1):
            self._sample()

    def __enter__(self) -> Self:
        if self.dbname:
            self._sample()
            self.before = dict(self.seen)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self.dbname:
            self._thread.join()

    @property
    def seconds(self) -> float | None:
        if not self.dbname:
            return None
        return sum(v - self.before.get(pid, 0.0) for pid, v in self.seen.items())


def export(url: str, fmt: str, out_dir: Path, attempts: bool = False) -> Run:
    """`dialer report` in a fresh process: wall time, that process's peak RSS and CPU, and the
    CPU of the PostgreSQL backends it used."""
    out = out_dir / f"{CAMPAIGN}{'-attempts' if attempts else ''}.{fmt}"
    cmd = [sys.executable, "-m", "dialer.cli.main", "--database-url", url, "report", CAMPAIGN,
           "-o", str(out)] + (["--attempts"] if attempts else [])
    parsed = make_url(url)
    dbname = parsed.database if parsed.get_backend_name() == "postgresql" else None
    with BackendCpu(dbname) as pg:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.PIPE, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
    err = proc.stderr.read() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"export failed: {err}")
    # stderr: "wrote 1,000,000 contacts to FILE (csv, 8.1 s)"
    rows = int(err.split("wrote ")[1].split()[0].replace(",", ""))
    export_seconds = float(err.rsplit(", ", 1)[1].split(" s)")[0])
    return Run("", fmt, seconds, export_seconds, usage.ru_maxrss / 1024,
               usage.ru_utime + usage.ru_stime, pg.seconds, out.stat().st_size / 2**20, rows)


def profile(url: str, fmt: str, out_dir: Path) -> None:
    import cProfile
    import pstats

    from campaigns.reports import write_report

    prof = cProfile.Profile()
    prof.enable()
    asyncio.run(write_report(url, CAMPAIGN, out_dir / f"profile.{fmt}"))
    prof.disable()
    pstats.Stats(prof).sort_stats("tottime").print_stats(25)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--contacts", type=int, default=1_000_000)
    ap.add_argument("--db", choices=["postgres", "sqlite", "both"], default="both")
    ap.add_argument("--formats", default="csv,parquet")
    ap.add_argument("--attempts", action="store_true", help="also export --attempts as csv")
    ap.add_argument("--pg-url", help="an existing PostgreSQL server's maintenance database URL")
    ap.add_argument("--pg-db", metavar="NAME",
                    help="with --pg-url: use (and keep) database NAME, generated only once: later "
                         "runs with the same NAME skip the ~90 s generation")
    ap.add_argument("--profile", metavar="FMT", help="profile one in-process export instead")
    args = ap.parse_args()

    speed_before = speed_after()
    work = Path(tempfile.mkdtemp(prefix="bench-report-"))
    server = None
    results: list[Run] = []
    try:
        targets: list[tuple[str, str]] = []
        if args.db in ("postgres", "both"):
            admin = args.pg_url
            if admin is None:
                sys.path.insert(0, str(ROOT))
                from tests.pgserver import start_server

                server = start_server()
                admin = server.url()
            name = args.pg_db or "bench_" + uuid.uuid4().hex[:8]
            reused = args.pg_db is not None and asyncio.run(_has_campaign(admin, name))
            if not reused:
                asyncio.run(_create_db(admin, name))
            targets.append(("postgres", make_url(admin).set(database=name)
                            .render_as_string(hide_password=False)))
        if args.db in ("sqlite", "both"):
            targets.append(("sqlite", f"sqlite:///{work / 'bench.db'}"))
        for db, url in targets:
            upgrade(url)
            if db == "postgres" and args.pg_db is not None and reused:
                print(f"{db}: reusing database {args.pg_db}", file=sys.stderr)
            else:
                started = time.perf_counter()
                contacts, attempts = asyncio.run(generate(url, args.contacts))
                print(f"{db}: generated {contacts:,} contacts, {attempts:,} attempts in "
                      f"{time.perf_counter() - started:.1f} s", file=sys.stderr)
            if args.profile:
                profile(url, args.profile, work)
                continue
            for fmt in args.formats.split(","):
                run = export(url, fmt, work)
                run.db = db
                results.append(run)
                print(f"{db} {fmt}: {run.export_seconds:.1f} s, peak RSS "
                      f"{run.peak_rss_mb:.0f} MB", file=sys.stderr)
            if args.attempts:
                run = export(url, "csv", work, attempts=True)
                run.db, run.fmt = db, "csv --attempts"
                results.append(run)
    finally:
        if server is not None:
            server.cleanup()
        for p in work.iterdir():
            p.unlink()
        work.rmdir()
    if results:
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        print(f"\nmachine: {os.cpu_count()} cores, {platform.machine()}, Python "
              f"{platform.python_version()}, {date.today().isoformat()}; "
              f"{args.contacts:,} contacts; load average at the end {load}; Python speed "
              f"{speed_before:.0f} us before / {speed_after():.0f} us after "
              "per `sum(range(1000))`\n")
        print("| database | format | rows | export (s) | process (s) | peak RSS (MB) | "
              "Python CPU (s) | PostgreSQL CPU (s) | file (MB) |")
        print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
        for r in results:
            pg = f"{r.postgres_cpu:.1f}" if r.postgres_cpu is not None else "-"
            print(f"| {r.db} | {r.fmt} | {r.rows:,} | {r.export_seconds:.1f} | {r.seconds:.1f} | "
                  f"{r.peak_rss_mb:.0f} | {r.python_cpu:.1f} | {pg} | {r.size_mb:.0f} |")


def speed_after() -> float:
    """Microseconds for sum(range(1000)): how fast this core runs Python right now (other work
    on the machine shows here)."""
    import timeit

    return min(timeit.repeat("sum(range(1000))", number=2000, repeat=5)) / 2000 * 1e6


async def _has_campaign(admin_url: str, name: str) -> bool:
    """Whether database `name` exists and holds the generated campaign (for --pg-db)."""
    import asyncpg

    url = make_url(admin_url).set(drivername="postgresql")
    conn = await asyncpg.connect(url.render_as_string(hide_password=False))
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            return False
    finally:
        await conn.close()
    conn = await asyncpg.connect(url.set(database=name).render_as_string(hide_password=False))
    try:
        return bool(await conn.fetchval(
            "SELECT 1 FROM information_schema.tables WHERE table_name = 'campaigns'")
            and await conn.fetchval("SELECT 1 FROM campaigns WHERE name = $1", CAMPAIGN))
    finally:
        await conn.close()


async def _create_db(admin_url: str, name: str) -> None:
    import asyncpg

    plain = make_url(admin_url).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(plain)
    try:
        await conn.execute(f"CREATE DATABASE {name}")
    finally:
        await conn.close()


if __name__ == "__main__":
    main()
