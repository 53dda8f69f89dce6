"""Reports of a dry run say so; its times (simulated, ahead of the wall clock) are measured
from its own last dial, not from a wall-clock now before all of them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from campaigns.db.engine import create_engine, session_factory
from campaigns.db.models import AttemptState, CallAttempt, Campaign, Contact
from campaigns.reports import summary, write_report
from campaigns.reports.summary import DRY_RUN_NOTE
from campaigns.service import mark_dry_run
from tests.reports import data


async def _mark(url: str) -> list[str]:
    engine = create_engine(url)
    try:
        async with session_factory(engine)() as s, s.begin():
            return await mark_dry_run(s)
    finally:
        await engine.dispose()


async def test_dry_run_is_marked_and_reported(sqlite_url: str, tmp_path: Path) -> None:
    await data.build(sqlite_url)  # a running campaign
    assert await _mark(sqlite_url) == ["spring"]
    assert await _mark(sqlite_url) == []  # already marked
    s = await summary(sqlite_url, "spring", now=data.NOW)
    assert s.dry_run is True and s.notes[0] == DRY_RUN_NOTE
    assert s.to_dict()["dry_run"] is True
    path = tmp_path / "r.html"
    await write_report(sqlite_url, "spring", path, now=data.NOW)
    html = path.read_text(encoding="utf-8")
    assert "Campaign report: spring (dry run)" in html and "Dry run: played against" in html


async def test_dry_run_summary_measured_at_its_last_dial(sqlite_url: str) -> None:
    """Simulated times run ahead of the wall clock: a dry run in progress still has a recent
    dial rate and an ETA."""
    future = datetime.now(UTC) + timedelta(days=30)
    engine = create_engine(sqlite_url)
    try:
        async with session_factory(engine)() as s, s.begin():
            c = Campaign(name="dry", status="running", from_number="+14155550100",
                         connection_id="1", dry_run=True, started_at=future)
            s.add(c)
            await s.flush()
            for i in range(4):
                contact = Contact(campaign_id=c.id, phone_e164=f"+1415555{i:04d}",
                                  status="done" if i < 3 else "queued", attempts=1 if i < 3
                                  else 0, outcome="busy" if i < 3 else None)
                s.add(contact)
                await s.flush()
                if i < 3:
                    at = future + timedelta(minutes=i)
                    s.add(CallAttempt(contact_id=contact.id, campaign_id=c.id, attempt_no=1,
                                      phone_e164=contact.phone_e164, command_id=f"c{i}",
                                      client_state="x", state=AttemptState.ENDED, created_at=at,
                                      dialed_at=at, ended_at=at + timedelta(seconds=5),
                                      outcome="busy"))
    finally:
        await engine.dispose()
    s = await summary(sqlite_url, "dry")
    assert s.dry_run and s.generated_at < future  # generated now, in wall time
    assert s.recent_dials_per_hour and s.recent_dials_per_hour > 0
    assert s.eta_seconds is not None and s.eta_at is not None and s.eta_at > future
