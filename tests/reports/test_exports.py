"""Every format round-trips the data: read each file back and compare with the database."""

from __future__ import annotations

from pathlib import Path

import pytest

from campaigns.db.models import ContactStatus
from campaigns.reports import write_report
from campaigns.reports.columns import ATTEMPT_COLUMNS, CONTACT_COLUMNS
from tests.reports import data
from tests.reports.readback import assert_rows, read

FILE_FORMATS = ("csv", "jsonl", "xlsx", "parquet")


@pytest.mark.parametrize("fmt", FILE_FORMATS)
async def test_contacts_round_trip(db_url: str, tmp_path: Path, fmt: str) -> None:
    built = await data.build(db_url)
    path = tmp_path / f"contacts.{fmt}"
    result = await write_report(db_url, "spring", path)  # format from the extension
    assert result.format == fmt and result.rows == len(built.specs)
    assert result.unmapped_columns == []
    header, rows = read(fmt, path)
    assert header == data.HEADERS + [c.name for c in CONTACT_COLUMNS]
    assert_rows(fmt, rows, data.expected_contacts(built))


@pytest.mark.parametrize("fmt", FILE_FORMATS)
async def test_attempts_round_trip(db_url: str, tmp_path: Path, fmt: str) -> None:
    built = await data.build(db_url)
    path = tmp_path / f"attempts.{fmt}"
    result = await write_report(db_url, "spring", path, attempts=True)
    expected = data.expected_attempts(built)
    assert result.rows == len(expected)
    header, rows = read(fmt, path)
    assert header == [c.name for c in ATTEMPT_COLUMNS]
    assert_rows(fmt, rows, expected)
    # not-placed attempts (a 429, a 422) are listed, with their error
    not_placed = [r for r in expected if r["state"] == "not_placed"]
    assert {r["error_code"] for r in not_placed} == {"429", "10016"}


async def test_in_progress_campaign_reports_queued_with_next_attempt(sqlite_url: str,
                                                                     tmp_path: Path) -> None:
    built = await data.build(sqlite_url)
    path = tmp_path / "r.jsonl"
    await write_report(sqlite_url, "spring", path)
    _, rows = read("jsonl", path)
    queued = [r for r in rows if r["status"] == ContactStatus.QUEUED]
    assert len(queued) == sum(s.status == ContactStatus.QUEUED for s in built.specs) == 3
    assert all(r["next_attempt_at_utc"] and r["next_attempt_at_local"] for r in queued
               if r["timezone"])
    assert all(r["next_attempt_at_utc"] for r in queued)
    assert all(r["next_attempt_at_utc"] is None for r in rows if r["status"] != "queued")
    busy = next(r for r in rows if r["outcome"] == "busy")
    assert busy["next_attempt_at_local"].endswith("+00:00")  # Europe/London in March: GMT
    assert busy["sip_hangup_cause"] == "486"


async def test_column_name_clash_and_second_import(sqlite_url: str, tmp_path: Path) -> None:
    """An uploaded header named like a report column keeps its name; the report's is prefixed.
    A later import's new headers follow the first import's."""
    from sqlalchemy import update

    from campaigns.db.engine import create_engine, session_factory
    from campaigns.db.models import Contact, ContactImport

    built = await data.build(sqlite_url)
    engine = create_engine(sqlite_url)
    async with session_factory(engine)() as s, s.begin():
        imp = ContactImport(campaign_id=built.campaign_id, file_name="more.xlsx",
                            columns=["Mobile", "status", "Region"], phone_column="Mobile")
        s.add(imp)
        await s.flush()
        s.add(Contact(campaign_id=built.campaign_id, import_id=imp.id, phone_e164="+14155550199",
                      phone_raw="415-555-0199", region="CA", custom_fields={"status": "vip"},
                      timezones=["America/Los_Angeles"], status="queued"))
        await s.execute(update(Contact).where(Contact.id == built.contacts[0].id)
                        .values(custom_fields={**built.contacts[0].custom_fields}))
    await engine.dispose()
    path = tmp_path / "r.csv"
    await write_report(sqlite_url, "spring", path)
    header, rows = read("csv", path)
    assert header[:11] == data.HEADERS + ["Mobile", "status", "Region"]
    assert "dialer_status" in header and header.count("status") == 1
    last = rows[-1]
    assert (last["Mobile"], last["status"], last["Region"], last["dialer_status"]) == (
        "415-555-0199", "vip", "CA", "queued")
    assert last["Phone"] == "" and rows[0]["Mobile"] == ""


async def test_recognised_columns_replay_the_importer_mapping(sqlite_url: str,
                                                              tmp_path: Path) -> None:
    """Fields come back from the contact's columns by the importer's own mapping; an import whose
    mapping cannot be replayed gives back custom_fields only and names the other headers."""
    from campaigns.db.engine import create_engine, session_factory
    from campaigns.db.models import Contact, ContactImport

    built = await data.build(sqlite_url)
    engine = create_engine(sqlite_url)
    async with session_factory(engine)() as s, s.begin():
        ok = ContactImport(campaign_id=built.campaign_id, file_name="crm.csv",
                           columns=["Tel", "Surname", "State", "Time Zone"], phone_column="Tel")
        broken = ContactImport(campaign_id=built.campaign_id, file_name="x.csv",
                               columns=["Mystery", "Kept"], phone_column="Gone")
        s.add_all([ok, broken])
        await s.flush()
        s.add_all([
            Contact(campaign_id=built.campaign_id, import_id=ok.id, phone_e164="+14155550196",
                    phone_raw="415 555 0196", last_name="Doe", region="CA",
                    custom_fields={"Time Zone": "PST"}, timezones=[], status="queued"),
            Contact(campaign_id=built.campaign_id, import_id=broken.id,
                    phone_e164="+14155550198", phone_raw="4155550198",
                    custom_fields={"Kept": "k"}, timezones=[], status="queued"),
        ])
    await engine.dispose()
    result = await write_report(sqlite_url, "spring", tmp_path / "r.jsonl")
    assert result.unmapped_columns == ["Mystery"]
    _, rows = read("jsonl", tmp_path / "r.jsonl")
    crm, other = rows[-2], rows[-1]
    assert (crm["Tel"], crm["Surname"], crm["State"], crm["Time Zone"]) == (
        "415 555 0196", "Doe", "CA", "PST")
    assert crm["Phone"] is None and crm["Kept"] is None  # columns of other imports
    assert (other["Mystery"], other["Kept"]) == (None, "k")


async def test_empty_campaign(db_url: str, tmp_path: Path) -> None:
    from campaigns.db.engine import create_engine, session_factory
    from campaigns.db.models import Campaign

    engine = create_engine(db_url)
    async with session_factory(engine)() as s, s.begin():
        s.add(Campaign(name="empty", from_number="+14155550100", connection_id="1"))
    await engine.dispose()
    for fmt in FILE_FORMATS:
        path = tmp_path / f"e.{fmt}"
        assert (await write_report(db_url, "empty", path)).rows == 0
        _, rows = read(fmt, path) if fmt != "jsonl" else ([], [])
        assert rows == []
    assert (await write_report(db_url, "empty", tmp_path / "e.html")).kind == "html"


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@pytest.mark.parametrize("attempts", [False, True])
async def test_postgres_parallel_ranges_keep_order(pg_url: str, tmp_path: Path, fmt: str,
                                                   attempts: bool,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The COPY fast path split into ranges on several connections gives the same rows, in
    order, as one query."""
    from campaigns.reports import pgcopy

    monkeypatch.setattr(pgcopy, "PARALLEL_MIN_ROWS", 1)
    monkeypatch.setattr(pgcopy, "part_count", lambda: 3)
    built = await data.build(pg_url)
    path = tmp_path / f"r.{fmt}"
    result = await write_report(pg_url, "spring", path, attempts=attempts)
    expected = data.expected_attempts(built) if attempts else data.expected_contacts(built)
    assert result.rows == len(expected)
    _, rows = read(fmt, path)
    assert_rows(fmt, rows, expected)
