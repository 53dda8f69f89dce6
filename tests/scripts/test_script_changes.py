"""A campaign's script changed while it runs: refused while calls are in progress (their flow
states name prompts by the step's place in the script), allowed once none is."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select, update

from campaigns.db.engine import create_engine, session_factory
from campaigns.db.models import CallAttempt, Contact
from campaigns.db.types import utcnow
from campaigns.errors import InvalidSettings
from campaigns.service import update_settings
from tests.engine.helpers import numbers, seed
from tests.engine.test_scripts_e2e import SETTINGS

# A step whose name sorts first: every other step's place in the script moves.
NEW_SCRIPT: dict[str, Any] = {**SETTINGS["script"], "a_thanks": {"say": "Thanks."}}
NEW_SCRIPT["start"] = {**NEW_SCRIPT["start"], "keys": {**NEW_SCRIPT["start"]["keys"],
                                                       "4": "a_thanks"}}


async def _set(url: str, **values: Any) -> None:
    db = create_engine(url)
    try:
        async with session_factory(db)() as s, s.begin():
            await update_settings(s, "changes", values)
    finally:
        await db.dispose()


async def _call(url: str, cid: int, state: str) -> None:
    db = create_engine(url)
    try:
        async with session_factory(db)() as s, s.begin():
            if not await s.scalar(select(func.count()).select_from(CallAttempt)):
                contact = await s.scalar(select(Contact.id).where(Contact.campaign_id == cid))
                s.add(CallAttempt(contact_id=contact, campaign_id=cid, attempt_no=1,
                                  phone_e164="+14152000000", command_id="c", client_state="s",
                                  state=state, flow_state="s1.1.1", created_at=utcnow()))
            await s.execute(update(CallAttempt).values(state=state))
    finally:
        await db.dispose()


async def test_a_script_does_not_change_under_calls_in_progress(db_url: str) -> None:
    cid = await seed(db_url, "changes", numbers(3), **SETTINGS)
    await _call(db_url, cid, "answered")
    with pytest.raises(InvalidSettings, match="has calls in progress"):
        await _set(db_url, script=NEW_SCRIPT)
    with pytest.raises(InvalidSettings, match="has calls in progress"):
        await _set(db_url, opt_out_digit="8")
    await _set(db_url, cps=5)  # other settings change as before
    await _call(db_url, cid, "ended")
    await _set(db_url, script=NEW_SCRIPT)  # no call in progress any more
