"""A campaign with a call script end to end against the simulator, on SQLite and PostgreSQL:
every contact's recorded answers are what the simulator's ledger says the callee pressed, and
numbers that opted out are on the DNC list and never dialed again."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from sqlalchemy import select

from campaigns.db.engine import create_engine, session_factory
from campaigns.db.models import AttemptResponse, DncNumber
from campaigns.reports import summary, write_report
from dialer.simulator.config import FaultConfig
from dialer.simulator.ledger import LedgerCall
from tests.engine.helpers import (
    attempts_of,
    campaign_status,
    contacts_of,
    numbers,
    rig,
    seed,
    wait_for,
)
from tests.openapi import command_errors

SCRIPT: dict[str, Any] = {
    "start": {"say": "Hello {first_name|there}, this is Acme Clinic about your visit. Press 1 to "
                     "confirm, 2 to talk to us, 9 to stop these calls.",
              # 3: the menu again (a step visited again is a prompt of its own)
              "keys": {"1": "confirm", "2": "transfer", "3": "start", "9": "opt_out"},
              "no_input": "repeat", "tries": 2, "invalid": "Sorry, that is not a choice."},
    "confirm": {"say": "Thank you, see you then.", "label": "confirmed"},
}
SETTINGS: dict[str, Any] = {"on_human": "script", "script": SCRIPT, "opt_out_digit": "9",
                            "transfer_to": "+14155550199", "max_attempts": 1}


async def _responses(url: str) -> list[AttemptResponse]:
    engine = create_engine(url)
    try:
        async with session_factory(engine)() as s:
            return list((await s.scalars(select(AttemptResponse)
                                         .order_by(AttemptResponse.id))).all())
    finally:
        await engine.dispose()


async def _dnc(url: str) -> dict[str, str | None]:
    engine = create_engine(url)
    try:
        async with session_factory(engine)() as s:
            return {d.phone_e164: d.source for d in await s.scalars(select(DncNumber))}
    finally:
        await engine.dispose()


def assert_commands_valid(calls: list[LedgerCall]) -> int:
    """Every command the engine sent on these calls (the simulator's ledger keeps each body)
    validates against the official OpenAPI schema, and carries a command_id of its own and the
    attempt's client_state. Returns how many gathers there were."""
    gathers = 0
    for call in calls:
        assert command_errors(call.actions) == [], (call.to, call.actions)
        ids = [a["request"].get("command_id") for a in call.actions]
        assert all(ids) and len(set(ids)) == len(ids), ids
        assert all(a["request"].get("client_state") for a in call.actions), call.actions
        gathers += sum(a["action"].startswith("gather_") for a in call.actions)
    return gathers


def _done(url: str, cid: int):  # type: ignore[no-untyped-def]
    async def _check() -> bool:
        return await campaign_status(url, cid) == "completed"
    return _check


async def test_script_answers_match_the_ledger_and_opt_outs_stick(db_url: str,
                                                                  tmp_path: Path) -> None:
    phones = numbers(60)
    cid = await seed(db_url, "reminders", phones, **SETTINGS)
    faults = FaultConfig(duplicate=0.1, reorder=0.1)
    # 30x, not 50x: at 50x, runs on a loaded machine (tests in parallel) had too few prompts
    # answered for the coverage check below (a 0.1 s stall is 5 s of a simulated call).
    async with rig(db_url, mix={"human": 8, "no_answer": 1, "busy": 1}, speed=30,
                   faults=faults) as r:
        r.sim.config.keypad = {"valid": 6, "invalid": 1, "timeout": 1, "hangup": 1}
        await wait_for(_done(db_url, cid), timeout=150)
        ledger = {c.command_id: c for c in r.sim.ledger}
    assert assert_commands_valid(list(ledger.values())) > 40
    attempts = {a.id: a for a in await attempts_of(db_url)}
    contacts = {c.id: c for c in await contacts_of(db_url, cid)}
    recorded: dict[int, list[tuple[str | None, str]]] = {}
    for resp in await _responses(db_url):
        if resp.status != "reached":
            recorded.setdefault(resp.attempt_id, []).append((resp.digits, resp.status))
    opted, gathers = set(), 0
    for a in attempts.values():
        call = ledger.get(a.command_id)
        pressed = [(g["digits"] or None, g["status"]) for g in call.gathers] if call else []
        gathers += len(pressed)
        assert recorded.get(a.id, []) == pressed, (a.id, call and call.gathers)
        if any(d == "9" and s == "valid" for d, s in pressed):
            opted.add(a.phone_e164)
            assert contacts[a.contact_id].response == "opt_out"
    assert gathers > 40 and opted, "the mix must exercise prompts and opt-outs"
    # "3" led back to the menu and the menu was heard (and answered) again.
    assert any(g["digits"] == "3" and g["status"] == "valid"
               for call in ledger.values() for g in call.gathers[:-1])
    statuses = {s for rows in recorded.values() for _, s in rows}
    assert {"valid", "timeout", "invalid", "call_hangup"} <= statuses
    assert any(c.response == "confirmed" for c in contacts.values())
    assert any(c.script_completed is False for c in contacts.values())

    # Reports: a column per asking step and the final response; counts per answer per step.
    last_start: dict[str, str] = {}
    for resp in await _responses(db_url):
        if resp.step == "start" and resp.status != "reached":
            phone = attempts[resp.attempt_id].phone_e164
            last_start[phone] = resp.label or (
                resp.digits if resp.status == "valid" and resp.digits else resp.status)
    out = tmp_path / "r.csv"
    await write_report(db_url, "reminders", out)
    with out.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(contacts)
    for row in rows:
        assert (row["answer_start"] or None) == last_start.get(row["phone_e164"].lstrip("'"))
    assert {row["response"] for row in rows} >= {"confirmed", "opt_out"}
    assert "answer_confirm" in rows[0]  # no menu, but it listens for the opt-out key
    s = await summary(db_url, "reminders")
    assert s.answers["start"] and sum(s.answers["start"].values()) == len(last_start)
    assert s.answers["start"].get("opt_out", 0) >= 1
    # Every opt-out is counted at the step it was pressed at (the menu or the thank-you).
    assert sum(a.get("opt_out", 0) for a in s.answers.values()) == len(opted) == s.opted_out
    assert list(s.answers)[0] == "start"  # in the order a call meets the steps
    # One row per keypad answer, as stored (and so as the callee pressed), in every format.
    stored = await _responses(db_url)
    by_row = tmp_path / "answers.csv"
    await write_report(db_url, "reminders", by_row, responses=True)
    with by_row.open(newline="") as fh:
        answers = list(csv.DictReader(fh))
    assert [(a["step"], a["digits"] or None, a["status"], a["label"] or None) for a in answers] \
        == [(r.step, r.digits, r.status, r.label)
            for r in sorted(stored, key=lambda r: (r.contact_id, r.id))]
    assert {a["answer"] for a in answers} >= {"confirmed", "opt_out", "timeout"}
    await write_report(db_url, "reminders", tmp_path / "answers.parquet", responses=True)
    html = tmp_path / "r.html"
    await write_report(db_url, "reminders", html)
    assert "Keypad answers" in html.read_text()
    assert f"Opted out by keypress: {len(opted):,} contacts" in html.read_text()

    dnc = await _dnc(db_url)
    assert opted <= set(dnc)
    assert all("keypress in campaign 'reminders'" in (dnc[n] or "") for n in opted)

    # A second campaign on the same numbers dials none of the opted-out ones.
    again = await seed(db_url, "again", phones, **SETTINGS)
    async with rig(db_url, mix={"busy": 1}, speed=50) as r2:
        await wait_for(_done(db_url, again), timeout=120)
        dialed = {c.to for c in r2.sim.ledger}
    assert not dialed & opted
    second = await contacts_of(db_url, again)
    assert {c.phone_e164 for c in second if c.outcome == "dnc"} == opted


async def test_opt_out_during_a_plain_message(db_url: str) -> None:
    phones = numbers(30, start=500)
    cid = await seed(db_url, "message", phones, on_human="speak", max_attempts=1,
                     message_text="Hello {first_name|there}, this is Acme Clinic. Press 9 to "
                                  "stop these calls.", opt_out_digit="9")
    async with rig(db_url, mix={"human": 1}, speed=50) as r:
        r.sim.config.single_key_press = 0.4
        await wait_for(_done(db_url, cid), timeout=120)
        ledger = {c.command_id: c for c in r.sim.ledger}
    assert assert_commands_valid(list(ledger.values()))
    dnc = await _dnc(db_url)
    opted, heard = set(), 0
    for a in await attempts_of(db_url):
        call = ledger[a.command_id]
        if not call.gathers:  # hung up before the prompt was sent (a fast simulated call)
            assert not a.message_played and a.phone_e164 not in dnc
            continue
        (g,) = call.gathers  # the message is one prompt, listening for the opt-out key
        assert call.actions[0]["action"] == "gather_using_speak"
        assert call.actions[0]["valid_digits"] == "9"
        if g["status"] == "valid":
            opted.add(a.phone_e164)
        elif g["status"] == "timeout":
            heard += 1
            assert a.message_played
    assert opted and heard and opted == set(dnc) & set(phones)
    contacts = await contacts_of(db_url, cid)
    assert {c.phone_e164 for c in contacts if c.response == "opt_out"} == opted
