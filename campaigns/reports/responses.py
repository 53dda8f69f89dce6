"""Keypad answers in reports: one column per script step that asks something, or that listens
for the opt-out key (the contact's last answer there: its label, else the valid digits, else how
the prompt ended; `heard` for a prompt without a menu heard to its end), the final response and
whether the script completed; and counts per answer per step for the summary and the HTML chart.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from campaigns.db.models import AttemptResponse, Campaign, Contact
from campaigns.reports.columns import Column, Kind
from campaigns.reports.source import Conn
from campaigns.scripts import script_of
from campaigns.settings import settings_of

Row = tuple[Any, ...]


@dataclass(frozen=True)
class AnswerPlan:
    """The steps whose answers become columns, in the order a call meets them (`flow_order`);
    `menus` those with a keypad menu (the others only listen for the opt-out key)."""

    steps: list[str]
    menus: frozenset[str] = frozenset()

    @property
    def columns(self) -> tuple[Column, ...]:
        return (*(Column(f"answer_{s}", Kind.TEXT) for s in self.steps),
                Column("response", Kind.TEXT), Column("script_completed", Kind.BOOL))


def answer_plan(campaign: Campaign) -> AnswerPlan | None:
    """None when the campaign has no script and no opt-out key (no keypad answers)."""
    settings = settings_of(campaign)
    script = script_of(settings)
    listening = bool(settings.get("opt_out_digit"))
    if script is not None:
        steps = [n for n in script.flow_order() if script.steps[n].asks or listening]
        return AnswerPlan(steps, frozenset(n for n in steps if script.steps[n].asks))
    if listening:
        return AnswerPlan(["message"])
    return None


def answer_of(label: str | None, digits: str | None, status: str, menu: bool = True) -> str:
    """What a report shows for one prompt: the label, else the valid digits, else how it ended
    (`invalid` for a wrong key: its digits are no answer; `heard` when a prompt without a menu
    ran to its end without the opt-out key)."""
    if label:
        return label
    if status == "valid" and digits:
        return digits
    if status == "timeout" and not menu:
        return "heard"
    return status


async def answers_by_contact(conn: Conn, campaign_id: int, contact_ids: Sequence[int],
                             menus: frozenset[str] = frozenset()) -> dict[int, dict[str, str]]:
    """contact id -> step -> the last answer there (rows in order: the last one wins); `menus`:
    the steps with a keypad menu (AnswerPlan.menus)."""
    out: dict[int, dict[str, str]] = {}
    if not contact_ids:
        return out
    r = AttemptResponse
    rows = await conn.execute(
        select(r.contact_id, r.step, r.label, r.digits, r.status)
        .where(r.campaign_id == campaign_id, r.contact_id.in_(list(contact_ids)),
               r.status != "reached")
        .order_by(r.id))
    for cid, step, label, digits, status in rows:
        out.setdefault(cid, {})[step] = answer_of(label, digits, status, step in menus)
    return out


async def with_answers(conn: Conn, campaign_id: int, plan: AnswerPlan,
                       parts: AsyncIterator[list[Any]], build: Callable[[Any], Row]
                       ) -> AsyncIterator[list[Row]]:
    """Each chunk's rows (database rows with `id`, `response`, `script_completed`) built and
    followed by their answer columns."""
    async for part in parts:
        answers = await answers_by_contact(conn, campaign_id, [r.id for r in part], plan.menus)
        chunk = []
        for r in part:
            mine = answers.get(r.id, {})
            chunk.append((*build(r), *(mine.get(s) for s in plan.steps), r.response,
                          r.script_completed))
        yield chunk


async def answer_counts(conn: Conn, campaign: Campaign) -> dict[str, dict[str, int]]:
    """step -> answer -> contacts whose last answer at that step it is (asking steps only)."""
    plan = answer_plan(campaign)
    if plan is None:
        return {}
    r = AttemptResponse
    last: dict[tuple[int, str], str] = {}
    result = await conn.stream(
        select(r.contact_id, r.step, r.label, r.digits, r.status)
        .where(r.campaign_id == campaign.id, r.status != "reached").order_by(r.id)
        .execution_options(yield_per=20_000))
    async for cid, step, label, digits, status in result:
        last[(cid, step)] = answer_of(label, digits, status, step in plan.menus)
    counts: dict[str, dict[str, int]] = {s: {} for s in plan.steps}
    for (_, step), answer in last.items():
        if step in counts:
            counts[step][answer] = counts[step].get(answer, 0) + 1
    return {s: dict(sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))) for s, c in counts.items()}


async def opted_out_count(conn: Conn, campaign: Campaign) -> int | None:
    """Contacts whose answer is the opt-out (None: the campaign has no keypad answers)."""
    if answer_plan(campaign) is None:
        return None
    n = await conn.scalar(select(func.count()).select_from(Contact).where(
        Contact.campaign_id == campaign.id, Contact.response == "opt_out"))
    return int(n or 0)
