"""Loading the national DNC registry: N numbers from a full-list flat file, on PostgreSQL (COPY)
and SQLite (batched inserts), through the same code as `dialer dnc registry import`.

    .venv/bin/python bench/bench_registry.py [--numbers 1000000] [--no-postgres] [--no-sqlite]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import shutil
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from campaigns.compliance.registry import load_registry
from campaigns.db.engine import create_engine, session_factory
from campaigns.db.migrate import upgrade


def generate(path: Path, n: int) -> None:
    rng = random.Random(1)
    npas = [f"{rng.randrange(201, 990)}" for _ in range(300)]
    with path.open("w") as fh:
        for i in range(n):
            fh.write(f"{npas[i % len(npas)]},{2000000 + rng.randrange(7999999)}\n")


async def load(url: str, path: Path) -> tuple[float, int]:
    db = create_engine(url)
    try:
        t = time.perf_counter()
        async with session_factory(db)() as s, s.begin():
            result = await load_registry(s, path, date.today())
        return time.perf_counter() - t, result.total
    finally:
        await db.dispose()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--numbers", type=int, default=1_000_000)
    ap.add_argument("--no-postgres", action="store_true")
    ap.add_argument("--no-sqlite", action="store_true")
    args = ap.parse_args()
    print(f"machine: {os.cpu_count()} cores, {platform.machine()}, Python "
          f"{platform.python_version()}, {time.strftime('%Y-%m-%d')}", flush=True)
    work = Path(tempfile.mkdtemp(prefix="bench-registry-"))
    path = work / "registry.txt"
    generate(path, args.numbers)
    server = None
    try:
        targets = []
        if not args.no_postgres:
            from tests.pgserver import start_server

            server = start_server()
            targets.append(("postgres", server.url()))
        if not args.no_sqlite:
            targets.append(("sqlite", f"sqlite:///{work / 'bench.db'}"))
        for label, url in targets:
            upgrade(url)
            for run in ("first load", "reload (replaces the area codes)"):
                secs, total = asyncio.run(load(url, path))
                print(f"{label} {run}: {args.numbers:,} lines, {total:,} numbers in "
                      f"{secs:.1f} s ({args.numbers / secs:,.0f} lines/s)", flush=True)
    finally:
        if server is not None:
            server.cleanup()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
