"""The bulk contact insert itself (`campaigns.db.storage`): PostgreSQL's binary COPY, sent in phone
order, stores exactly what was given, with ids in the order the rows were given."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa

from campaigns.db import storage
from campaigns.db.engine import create_engine, session_factory
from campaigns.service import create_campaign
from tests.importing.conftest import query

STAMP = datetime(2026, 11, 27, 1, 2, 3, 456789, tzinfo=UTC)


def _rows(campaign_id: int, session: Any) -> pa.Table:
    stamp = storage.timestamp_text(session, STAMP)
    phones = ["+14155550103", "+12125550100", "+19175550199", "+14155550101", "+13125550100"]
    n = len(phones)
    return pa.table({
        "campaign_id": pa.array([campaign_id] * n, pa.int64()),
        "import_id": pa.array([None, 7, None, 7, 7], pa.int64()),
        "source_row": pa.array([2, 3, 5, 8, 9], pa.int64()),
        "phone_e164": phones,
        "phone_raw": ["415 555 0103", None, "(917) 555-0199 x12", "", "'quoted' \"x\", y\n z"],
        "extension": [None, None, "12", None, None],
        "first_name": ["Zoë", None, "José", "O'Brien", "a\tb"],
        "last_name": [None] * n,
        "email": ["z@example.com", None, None, None, None],
        "region": ["CA", "NY", None, "CA", "IL"],
        "postal_code": [None, "10001", None, None, None],
        "timezones": ['["America/Los_Angeles"]', '["America/New_York"]', "[]",
                      '["America/Los_Angeles"]', '["America/Chicago", "America/Denver"]'],
        "timezone_source": ["region", "region", "fallback", "number", "region"],
        "custom_fields": ['{"a": "1"}', "{}", '{"notes": "line\\nbreak", "é": "ü"}', "{}",
                          '{"x": ""}'],
        "status": ["queued"] * n,
        "attempts": pa.array([0] * n, pa.int64()),
        "next_attempt_at": [stamp] * n,
        "created_at": [stamp] * n,
        "updated_at": [stamp] * n,
    })


def test_insert_contacts_stores_what_it_was_given(db_url: str) -> None:
    async def go() -> pa.Table:
        engine = create_engine(db_url)
        try:
            async with session_factory(engine)() as session, session.begin():
                campaign = await create_campaign(session, "store", {
                    "from": "+14155550100", "connection_id": "1"})
                table = _rows(campaign.id, session)
                prepared = storage.prepare_contacts(table, storage.is_postgres(session))
                keep = np.array([True, True, False, True, True])
                assert await storage.insert_contacts(session, prepared.filter(keep)) == 4
            return table.filter(pa.array(keep))
        finally:
            await engine.dispose()

    given = asyncio.run(go())
    got = query(db_url, "SELECT id, campaign_id, import_id, source_row, phone_e164, phone_raw, "
                        "extension, first_name, last_name, email, region, postal_code, "
                        "timezones, timezone_source, custom_fields, status, attempts, "
                        "next_attempt_at, created_at, updated_at FROM contacts ORDER BY id")
    ids = [r[0] for r in got]
    assert ids == sorted(ids) and len(set(ids)) == 4
    assert [r[3] for r in got] == [2, 3, 8, 9]  # ids follow the given order, not phone order
    for row, want in zip(got, given.to_pylist()):
        assert row[1] == want["campaign_id"] and row[2] == want["import_id"]
        for i, name in enumerate(("phone_e164", "phone_raw", "extension", "first_name",
                                  "last_name", "email", "region", "postal_code"), start=4):
            assert row[i] == want[name], name
        assert _json(row[12]) == _json(want["timezones"])
        assert row[13] == want["timezone_source"]
        assert _json(row[14]) == _json(want["custom_fields"])
        assert row[15] == "queued" and row[16] == 0
        for value in row[17:20]:
            assert _naive(value) == STAMP.replace(tzinfo=None)


def _json(value: Any) -> Any:
    import json

    return json.loads(value) if isinstance(value, str) else value


def _naive(value: Any) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=None)
