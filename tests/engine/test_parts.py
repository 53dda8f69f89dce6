"""The engine's parts on their own, without a database or a network: the call flow, facts of an
event merged into an attempt, what counts as a database outage, the bounded document cache, the
dial queue, and a crashed task."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy.exc import DataError, IntegrityError, OperationalError

from campaigns.db.models import AttemptState, CallAttempt, Campaign
from dialer.engine import flow
from dialer.engine.attempts import DialOutcome, Timing, apply_event, pending_action
from dialer.engine.claims import DialJob
from dialer.engine.dispatcher import CampaignView, DialQueue, dial_request
from dialer.engine.event_log import RecentEvents
from dialer.engine.identity import (
    AttemptRef,
    action_command_id,
    client_state_tag,
    decode_client_state,
    encode_client_state,
)
from dialer.engine.runner import Engine, EngineConfig
from dialer.engine.transactions import is_outage

pytestmark = pytest.mark.fast

NOW = datetime(2026, 12, 3, 15, 0, tzinfo=timezone.utc)
SPEAK = {"on_human": "speak", "message_text": "Hello", "on_machine": "voicemail",
         "voicemail_text": "Call us", "voicemail_wait_secs": 20}


def _attempt() -> CallAttempt:
    return CallAttempt(id=1, contact_id=1, campaign_id=1, attempt_no=1, phone_e164="+14155550100",
                       command_id="c", client_state="s", state=AttemptState.CREATED,
                       created_at=NOW)


def _campaign(amd: str = "detect_beep") -> Campaign:
    return Campaign(id=1, name="c", status="running", from_number="+14155550100",
                    connection_id="x", dial_settings={"answering_machine_detection": amd},
                    settings=SPEAK)


# ------------------------------------------------------------------ call flow (pure)
def test_flow_human_gets_the_message() -> None:
    step = flow.step("awaiting_amd", "call.machine.detection.ended", {"result": "human"}, SPEAK,
                     "detect_beep")
    assert step is not None and step.flow_state == "message"
    assert [a.kind for a in step.actions] == ["speak"] and step.actions[0].text == "Hello"


def test_flow_machine_waits_for_the_greeting_then_drops_the_voicemail() -> None:
    waiting = flow.step("awaiting_amd", "call.machine.detection.ended", {"result": "machine"},
                        SPEAK, "detect_beep")
    assert waiting is not None and waiting.flow_state == "awaiting_greeting"
    assert waiting.timer_secs == 20 and not waiting.actions
    beep = flow.step("awaiting_greeting", "call.machine.greeting.ended",
                     {"result": "beep_detected"}, SPEAK, "detect_beep")
    assert beep is not None and beep.flow_state == "voicemail"
    assert [a.kind for a in beep.actions] == ["speak"]
    fallback = flow.timer_fired("awaiting_greeting", SPEAK)
    assert fallback is not None and fallback.flow_state == "voicemail"


# ------------------------------------------------------------------ apply_event (in memory)
def test_apply_event_moves_forward_only_and_keeps_first_facts() -> None:
    attempt, campaign, timing = _attempt(), _campaign(), Timing()
    apply_event(attempt, campaign, "call.answered", {"call_control_id": "v3:a"}, NOW, NOW, timing)
    assert attempt.state == AttemptState.ANSWERED and attempt.call_control_id == "v3:a"
    apply_event(attempt, campaign, "call.initiated", {"call_control_id": "v3:b"}, NOW, NOW, timing)
    assert attempt.state == AttemptState.ANSWERED and attempt.call_control_id == "v3:a"
    later = NOW + timedelta(seconds=30)
    apply_event(attempt, campaign, "call.hangup", {"hangup_cause": "normal_clearing",
                                                    "end_time": later.isoformat()}, later, later,
                timing)
    assert attempt.state == AttemptState.ENDED and attempt.ended_at == later
    apply_event(attempt, campaign, "call.hangup", {"hangup_cause": "user_busy"}, later, later,
                timing)
    assert attempt.hangup_cause == "normal_clearing"
    assert attempt.settle_after is not None  # AMD result may still come: settles after a grace


def test_apply_event_sends_no_action_once_the_call_ended() -> None:
    attempt, campaign, timing = _attempt(), _campaign(), Timing()
    apply_event(attempt, campaign, "call.hangup", {"hangup_cause": "normal_clearing"}, NOW, NOW,
                timing)
    actions = apply_event(attempt, campaign, "call.machine.detection.ended",
                          {"result": "human"}, NOW, NOW, timing)
    assert actions == [] and attempt.amd_result == "human"


def test_every_action_carries_its_own_command_id_and_the_attempts_client_state() -> None:
    a = _attempt()
    a.client_state, a.call_control_id = encode_client_state(AttemptRef(7, 2)), "v3:call"
    a.flow_state = "s1.2"
    gather = pending_action(a, flow.Action("gather", text="Press 1", tag="s1.2"), {})
    hangup = pending_action(a, flow.Action("hangup"), {})
    stop = pending_action(a, flow.Action("hangup"), {}, key="hangup-stop")
    # Each command its own id, the same one when the step is decided again after a crash.
    assert gather.command_id == action_command_id("c", "gathers1.2")
    assert hangup.command_id == action_command_id("c", "hangups1.2")
    assert stop.command_id == action_command_id("c", "hangup-stop")
    for pa in (gather, hangup, stop):
        # Names the attempt as the dial's does, tagged with the flow state: a prompt's end
        # caused by a hangup still matches the prompt.
        assert decode_client_state(pa.action.client_state) == AttemptRef(7, 2)
        assert client_state_tag(pa.action.client_state) == "s1.2"
    a.flow_state = "optout"
    speak = pending_action(a, flow.Action("speak", text="Goodbye."), {})
    assert client_state_tag(speak.action.client_state) == "optout"


def test_oversized_ids_from_a_webhook_are_not_stored() -> None:
    attempt = _attempt()
    apply_event(attempt, _campaign(), "call.initiated",
                {"call_control_id": "x" * 201, "call_leg_id": "y" * 65}, NOW, NOW, Timing())
    assert attempt.call_control_id is None and attempt.call_leg_id is None


# ------------------------------------------------------------------ outage or not
class _Orig(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


@pytest.mark.parametrize(("exc", "outage"), [
    (OperationalError("x", {}, Exception("database is locked")), True),
    (ConnectionRefusedError(), True),
    (DataError("x", {}, _Orig("22003")), False),
    (IntegrityError("x", {}, _Orig("23505")), False),
    (OperationalError("x", {}, _Orig("57P01")), True),  # admin shutdown
    (OperationalError("x", {}, _Orig("22P02")), False),  # a data exception, whatever its class
    (OverflowError("Python int too large to convert to SQLite INTEGER"), False),
    (KeyError("a bug"), False),
])
def test_what_counts_as_an_outage(exc: BaseException, outage: bool) -> None:
    assert is_outage(exc) is outage


# ------------------------------------------------------------------ bounded document cache
def test_recent_documents_are_bounded_in_bytes_and_count() -> None:
    cache = RecentEvents(limit=1000, max_bytes=10_000)
    for i in range(100):
        cache.add(i, {"i": i}, 500)
    assert len(cache) == 20 and cache.bytes == 10_000
    assert cache.pop(0) is None and cache.pop(99) == {"i": 99}
    cache.add(1000, {"huge": True}, 9_000)  # over a quarter of the budget: read back instead
    assert cache.pop(1000) is None
    small = RecentEvents(limit=3, max_bytes=10_000)
    for i in range(5):
        small.add(i, {}, 1)
    assert len(small) == 3


# ------------------------------------------------------------------ dial queue
async def test_released_dials_are_results_not_attempts() -> None:
    results: list[DialOutcome] = []
    queue = DialQueue(results.append)
    job = DialJob(7, 1, 3, 1, "+14155550100", "cmd", "state")
    recovered = DialJob(8, 1, 4, 1, "+14155550101", "cmd2", "state2", resend=True)
    queue.push([job, recovered])
    assert queue.queued(1) == 2 and queue.tracked == {7, 8}
    queue.release_all(keep=lambda cid: cid != 1)
    assert [(r.attempt_id, r.kind) for r in results] == [(7, "released"), (8, "failed")]
    queue.recorded([7, 8])
    assert queue.tracked == set()


def test_dial_request_keeps_a_campaigns_own_webhook_url() -> None:
    job = DialJob(1, 1, 1, 1, "+14155550123", "8d7e6f5a-1b2c-4d3e-9f80-7a6b5c4d3e2f", "aGk=")
    view = CampaignView(1, "c", "running", "+14155550100", "conn", {}, {})
    assert dial_request(job, view, "http://h/w").to_body()["webhook_url"] == "http://h/w"
    view.dial_settings["webhook_url"] = "https://mine.example.com/hook"
    body = dial_request(job, view, "http://h/w").to_body()
    assert body["webhook_url"] == "https://mine.example.com/hook"
    assert body["command_id"] == job.command_id and body["client_state"] == "aGk="


# ------------------------------------------------------------------ a crashed task
async def test_a_crashed_task_stops_the_engine_and_says_so(tmp_path: object) -> None:
    engine = Engine(EngineConfig(database_url="sqlite:///:memory:", api_url="http://127.0.0.1:9",
                                 api_key="k", public_key=None, insecure_webhooks=True))

    async def boom() -> None:
        raise RuntimeError("a bug")
    await engine.guard("events", boom())
    assert engine.state.stopping.is_set()
    assert engine.crashed is not None and "events" in engine.crashed
    assert engine.health()["status"] == "stopping"
    await engine.client.close()
    await engine.db.dispose()
    await asyncio.sleep(0)


# ------------------------------------------------------------------ status of the account limits
def test_status_says_which_account_limits_apply_and_when_engines_disagree() -> None:
    from campaigns.due import EngineSeen

    same = EngineSeen(2, 0.5, (20.0, 20.0), (24, 24))
    assert same.text == "2 engines running; account limits 20 dials/s, 24 channels"
    split = EngineSeen(3, 0.5, (20.0, 30.0), (24, 40))
    assert "the engines disagree: 20-30 dials/s, 24-40 channels; the lowest wins" in split.text
    assert EngineSeen(0, 40.0).text.startswith("no engine seen for 40 s")


def test_a_dnc_announcement_yields_only_numbers() -> None:
    from campaigns.dnc_events import numbers_of

    assert numbers_of('["+14155550100", "+14155550101"]') == {"+14155550100", "+14155550101"}
    for payload in ("", "not json", "{}", "[1, null, {}]", '"+1415"', '["' + "9" * 50 + '"]'):
        assert numbers_of(payload) == set(), payload
