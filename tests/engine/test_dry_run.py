"""The README's dry run on a small list: `dialer run --simulate --speed 50 --exit-when-idle` plays
the whole campaign in simulated time (retries an hour or a day apart, calling window and days of
the sample's settings) and exits by itself with every contact done.

It needs the engine to read its time from `EngineConfig.clock` (see dialer/engine/clock.py);
until it does, it is skipped."""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from campaigns.db.engine import create_engine, session_factory
from campaigns.db.models import CallAttempt, Campaign, Contact
from tests.reliability.harness import _env

REPO = Path(__file__).resolve().parents[2]


def _dialer(url: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dialer.cli.main", "--database-url", url, *args],
                          capture_output=True, text=True, timeout=timeout, cwd=REPO, env=_env(),
                          check=False)


async def _read(url: str) -> tuple[Campaign, list[Contact], list[CallAttempt]]:
    engine = create_engine(url)
    try:
        async with session_factory(engine)() as s:
            c = (await s.scalars(select(Campaign))).one()
            contacts = list((await s.scalars(select(Contact))).all())
            attempts = list((await s.scalars(
                select(CallAttempt).order_by(CallAttempt.contact_id,
                                             CallAttempt.attempt_no))).all())
            return c, contacts, attempts
    finally:
        await engine.dispose()


@pytest.mark.slow
def test_readme_dry_run_finishes_with_every_contact_done(sqlite_url: str, tmp_path: Path) -> None:
    lines = (REPO / "sample_data" / "contacts.csv").read_text(encoding="utf-8").splitlines()
    small = tmp_path / "contacts.csv"
    small.write_text("\n".join(lines[:41]) + "\n", encoding="utf-8")  # 40 contacts
    for step in (["campaign", "create", "trial", "--config", "sample_data/campaign.toml"],
                 ["contacts", "import", "trial", str(small)],
                 ["campaign", "start", "trial"]):
        done = _dialer(sqlite_url, *step)
        assert done.returncode == 0, done.stderr
    run = _dialer(sqlite_url, "run", "--simulate", "--speed", "50", "--exit-when-idle",
                  "--port", "0", timeout=180)
    assert run.returncode == 0, run.stderr[-3000:]

    campaign, contacts, attempts = asyncio.run(_read(sqlite_url))
    assert campaign.status == "completed" and campaign.dry_run
    assert contacts and all(c.status == "done" for c in contacts)
    # retries are spaced by the sample's policy in simulated time (an hour for no_answer, ...)
    by_contact: dict[int, list[CallAttempt]] = {}
    for a in attempts:
        by_contact.setdefault(a.contact_id, []).append(a)
    gaps = [later.created_at - earlier.created_at
            for rows in by_contact.values() for earlier, later in itertools.pairwise(rows)
            if earlier.outcome in ("no_answer", "busy", "machine", "silence", "failed", "rejected")
            and later.state != "not_placed" and earlier.state != "not_placed"]
    assert gaps, "the sample's mix retries some contacts"
    assert min(gaps) >= timedelta(seconds=300)  # retry_busy_secs, the shortest delay

    summary = _dialer(sqlite_url, "report", "trial", "--summary")
    assert summary.returncode == 0 and "dry run" in (summary.stdout + summary.stderr).lower()
