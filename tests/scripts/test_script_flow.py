"""The script call flow as a pure state machine (dialer.engine.script_flow via flow.step)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import pytest

from campaigns.errors import InvalidSettings
from campaigns.scripts import invalid_then_prompt, parse_script, script_of
from dialer.engine import flow, script_flow
from dialer.engine.flow import Response
from dialer.engine.identity import AttemptRef, encode_client_state
from tests.scripts.test_scripts import DEMO

pytestmark = pytest.mark.fast

SETTINGS: dict[str, Any] = {"on_human": "script", "script": DEMO, "opt_out_digit": "9",
                            "transfer_to": "+14155550199", "opt_out_message": "Bye."}
# sorted step names: confirm = 0, start = 1; "s<step>.<try>.<prompt in the call>"
START, CONFIRM = "s1.1.1", "s0.1.2"


def gathered(state: str, digits: Any, status: str = "valid") -> flow.FlowStep | None:
    cs = encode_client_state(AttemptRef(5, 1), state)
    return flow.step(state, "call.gather.ended", {"digits": digits, "status": status,
                                                  "client_state": cs}, SETTINGS, "disabled")


def test_answer_starts_the_script_with_a_gather() -> None:
    st = flow.step(None, "call.answered", {}, SETTINGS, "disabled")
    assert st is not None and st.flow_state == START and st.script_completed is False
    (act,) = st.actions
    assert act.kind == "gather" and act.valid_digits == "129" and act.tag == START
    assert act.text is not None and act.text.startswith("Hello {first_name|there}")


def test_key_goes_to_step_and_records_label() -> None:
    st = gathered(START, "1")
    assert st is not None and st.flow_state == CONFIRM
    assert st.responses == [Response("start", 1, "1", "valid", "confirmed"),
                            Response("confirm", 1, None, "reached", "confirmed")]
    (act,) = st.actions  # the confirm step listens for the opt-out key only
    assert act.kind == "gather" and act.valid_digits == "9" and act.timeout_ms == 1000
    # Reaching the closing step completes the script, even if the person hangs up during it.
    assert st.script_completed is True
    end = gathered(CONFIRM, "", "timeout")
    assert end is not None and end.flow_state == "hangup" and end.script_completed is True
    gone = gathered(CONFIRM, "", "call_hangup")
    assert gone is not None and gone.script_completed is None  # keeps what it was


def test_opt_out_and_transfer() -> None:
    st = gathered(START, "9")
    assert st is not None and st.opt_out and st.flow_state == "optout"
    assert st.actions[0].kind == "speak" and st.actions[0].text == "Bye."
    assert st.responses[0].label == "opt_out"
    done = flow.step("optout", "call.speak.ended", {"status": "completed"}, SETTINGS, "disabled")
    assert done is not None and done.flow_state == "hangup"
    assert flow.timer_fired("optout", SETTINGS) is not None
    tr = gathered(START, "2")
    assert tr is not None and tr.flow_state == "transfer" and tr.actions[0].to == "+14155550199"


def test_no_input_repeats_then_hangs_up() -> None:
    st = gathered(START, "", "timeout")
    assert st is not None and st.flow_state == "s1.2.2" and st.responses[0].status == "timeout"
    last = gathered("s1.2.2", "", "timeout")
    assert last is not None and last.flow_state == "hangup" and last.script_completed is False


@pytest.mark.parametrize("digits", ["1" * 5000, "1\x00", "abc", "１", 7, None, "1#1"])
def test_absurd_digits_change_nothing_beyond_an_invalid_entry(digits: Any) -> None:
    st = gathered(START, digits)
    assert st is not None and st.flow_state == "s1.2.2"  # a wrong entry: the prompt again
    (r,) = st.responses
    assert r.status == "invalid" and (r.digits is None or len(r.digits) <= 32)
    assert r.digits is None or set(r.digits) <= set("0123456789*#")


def test_late_and_duplicate_gathers_are_ignored() -> None:
    assert flow.step(CONFIRM, "call.gather.ended", {
        "digits": "1", "status": "valid",
        "client_state": encode_client_state(AttemptRef(5, 1), START)}, SETTINGS, "disabled") is None
    assert flow.step(START, "call.gather.ended", {"digits": "1", "status": "valid",
                                                  "client_state": None}, SETTINGS,
                     "disabled") is None
    bogus = base64.b64encode(b"dlr1:5:1:s1.1:extra").decode()
    assert flow.step(START, "call.gather.ended", {"digits": "1", "status": "valid",
                                                  "client_state": bogus}, SETTINGS,
                     "disabled") is None


LOOP: dict[str, Any] = {
    "start": {"say": "Menu A. Press 1 to end.", "keys": {"1": "hangup"}, "no_input": "b"},
    "b": {"say": "Menu B. Press 1 to end.", "keys": {"1": "hangup"}, "no_input": "start"},
}


def test_a_step_visited_again_is_a_new_prompt_and_the_loop_ends() -> None:
    settings = {"on_human": "script", "script": LOOP}
    st = flow.step(None, "call.answered", {}, settings, "disabled")
    seen = []
    while st is not None and st.flow_state != "hangup":
        assert st.flow_state is not None
        seen.append(st.flow_state)
        (act,) = st.actions
        assert act.tag == st.flow_state
        cs = encode_client_state(AttemptRef(5, 1), st.flow_state)
        # An answer to an earlier visit of the same step changes nothing.
        if len(seen) > 2:
            stale = encode_client_state(AttemptRef(5, 1), seen[-3])
            assert flow.step(st.flow_state, "call.gather.ended", {
                "digits": "1", "status": "valid", "client_state": stale}, settings,
                "disabled") is None
        st = flow.step(st.flow_state, "call.gather.ended", {
            "digits": "", "status": "timeout", "client_state": cs}, settings, "disabled")
    # Each visit its own state (so its own command_id and tag), until the cap on prompts.
    assert seen[:4] == ["s1.1.1", "s0.1.2", "s1.1.3", "s0.1.4"]
    assert len(seen) == len(set(seen)) == script_flow.MAX_PROMPTS + len(LOOP)
    assert st is not None and st.script_completed is False


def test_hangup_mid_prompt_is_recorded() -> None:
    st = gathered(START, "", "call_hangup")
    assert st is not None and st.flow_state == "done" and st.actions == []
    assert st.responses == [Response("start", 1, None, "call_hangup")]


def test_plain_message_with_opt_out() -> None:
    settings = {"on_human": "speak", "message_text": "Hi", "opt_out_digit": "9"}
    st = flow.step(None, "call.answered", {}, settings, "disabled")
    assert st is not None and st.flow_state == "message" and st.actions[0].kind == "gather"
    cs = encode_client_state(AttemptRef(1, 1), "message")
    out = flow.step("message", "call.gather.ended", {"digits": "9", "status": "valid",
                                                     "client_state": cs}, settings, "disabled")
    assert out is not None and out.opt_out and out.script_completed is None  # no script
    heard = flow.step("message", "call.gather.ended", {"digits": "", "status": "timeout",
                                                       "client_state": cs}, settings, "disabled")
    assert heard is not None and heard.message_played and heard.flow_state == "hangup"


def test_entry_actions_resend_the_current_prompt() -> None:
    (act,) = flow.entry_actions("s1.2.2", SETTINGS)
    assert act.kind == "gather" and act.tag == "s1.2.2"
    (old,) = flow.entry_actions("s1.2", SETTINGS)  # as stored before states had a prompt number
    assert old.kind == "gather" and old.tag == "s1.2"
    assert gathered("s1.2", "1") is not None  # and its answer still moves the call on
    assert flow.entry_actions("optout", SETTINGS)[0].kind == "speak"


def test_render_action_fills_text_url_and_number() -> None:
    from dialer.engine.script_events import render_action

    act = flow.Action("gather", text="Hi {first_name|there}, call {callback}",
                      audio_url="https://x.test/{first_name}.wav", to="{agent}")
    fields = {"firstname": "Zoë <b>", "callback": "415-555-0100", "agent": "+14155550199"}
    out = render_action(act, fields)
    assert out.ssml and out.text == "<speak>Hi Zoë &lt;b&gt;, call 4 1 5 5 5 5 0 1 0 0</speak>"
    assert out.audio_url == "https://x.test/Zo%C3%AB%20%3Cb%3E.wav" and out.to == "+14155550199"


def test_unfinished_scripts_are_retried_only_when_asked() -> None:
    from datetime import UTC, datetime

    from campaigns import retry
    from campaigns.settings import with_defaults

    now = datetime(2026, 1, 1, tzinfo=UTC)
    off = with_defaults({"max_attempts": 3, "retry_jitter_secs": 0})
    on = {**off, "retry_incomplete": True, "retry_incomplete_secs": 60}
    kw = {"voicemail_left": False, "attempts_made": 1, "previous_outcomes": [], "now": now}
    assert not retry.decide(off, "human", script_incomplete=True, **kw).retry  # type: ignore[arg-type]
    d = retry.decide(on, "human", script_incomplete=True, **kw)  # type: ignore[arg-type]
    assert d.retry and d.at is not None and (d.at - now).total_seconds() == 60
    assert not retry.decide(on, "human", script_incomplete=False, **kw).retry  # type: ignore[arg-type]
    assert not retry.decide({**on, "max_attempts": 1}, "human", script_incomplete=True,
                            **kw).retry  # type: ignore[arg-type]


def test_script_starts_on_the_human_verdict_with_amd() -> None:
    st = flow.step("awaiting_amd", "call.machine.detection.ended", {"result": "human"},
                   SETTINGS, "detect")
    assert st is not None and st.flow_state == START and st.actions[0].kind == "gather"
    machine = flow.step("awaiting_amd", "call.machine.detection.ended", {"result": "machine"},
                        SETTINGS, "detect")
    assert machine is not None and machine.flow_state == "hangup"
    # A late AMD result or a media event changes nothing once the script runs.
    assert flow.step(START, "call.machine.detection.ended", {"result": "machine"}, SETTINGS,
                     "detect") is None
    assert flow.step(START, "call.speak.ended", {"status": "completed"}, SETTINGS,
                     "detect") is None


@pytest.mark.parametrize("script, message", [
    ({"start": {"audio": "https://a/b.wav", "invalid": "Sorry.", "keys": {"1": "hangup"}}},
     "start.invalid: is said before a `say` prompt"),
    ({"start": {"say": "x", "invalid_audio": "https://a/s.wav", "keys": {"1": "hangup"}}},
     "start.invalid_audio: is for audio prompts"),
    ({"start": {"say": "x", "no_input": "b"}, "b": {"say": "y"}}, "no_input: is for steps with"),
    ({"start": {"say": "x", "invalid": "Sorry.", "next": "b"}, "b": {"say": "y"}},
     "start.invalid: is for steps with keys"),
    ({"start": {"media_name": "m_{first_name}", "keys": {"1": "hangup"}}},
     "media_name: names a stored media file"),
    ({"start": {"say": "<speak>Hi <unclosed> {first_name|there}</speak>",
                "keys": {"1": "hangup"}}}, "start.say: is not well-formed SSML"),
    ({"start": {"say": "M" * 2000, "invalid": "I" * 1500, "keys": {"1": "hangup"}}},
     "start.invalid + say is 3,501 characters as sent"),
    ({"start": {"say": "Q&A " * 700 + "{first_name}", "keys": {"1": "hangup"}}},
     "start.say is 5,615 characters as sent"),
])
def test_scripts_that_would_break_a_call_are_refused_when_written(script: dict[str, Any],
                                                                  message: str) -> None:
    with pytest.raises(InvalidSettings) as exc:
        parse_script(script)
    assert message in str(exc.value)
    # A campaign stored before these checks keeps running: reading it for a call passes.
    assert script_of({"script": script}) is not None


def test_a_wrong_key_before_an_ssml_prompt_makes_one_ssml_document() -> None:
    assert invalid_then_prompt("Sorry.", "Press 1.") == "Sorry. Press 1."
    assert invalid_then_prompt("Sorry & no.", "<speak>Hi<break time=\"1s\"/></speak>") == (
        "<speak>Sorry &amp; no. Hi<break time=\"1s\"/></speak>")
    assert invalid_then_prompt("<speak version=\"1.1\">Oops</speak>", "Press <1>") == (
        "<speak>Oops Press &lt;1&gt;</speak>")
    again = _after_a_wrong_key({"start": {
        "say": "<speak>Hi {first_name}</speak>", "invalid": "Sorry.", "keys": {"1": "hangup"}}})
    assert again.actions[0].text == "<speak>Sorry. Hi {first_name}</speak>"


def _after_a_wrong_key(script: dict[str, Any]) -> flow.FlowStep:
    """The step after a wrong key at the script's first prompt."""
    settings = {"on_human": "script", "script": script}
    st = flow.step(None, "call.answered", {}, settings, "disabled")
    assert st is not None and st.flow_state is not None
    again = flow.step(st.flow_state, "call.gather.ended", {
        "digits": "5", "status": "invalid",
        "client_state": encode_client_state(AttemptRef(5, 1), st.flow_state)}, settings,
        "disabled")
    assert again is not None
    return again


def test_the_invalid_audio_of_a_media_prompt_is_its_only_source() -> None:
    again = _after_a_wrong_key({"start": {
        "media_name": "menu", "invalid_audio": "https://a.test/sorry.wav",
        "keys": {"1": "hangup"}}})
    (act,) = again.actions
    assert act.audio_url == "https://a.test/sorry.wav" and act.media_name is None


@pytest.mark.parametrize("status", ["VALID", "reached", "valid\x00", 7, None, ["valid"]])
def test_an_unknown_status_is_recorded_as_such_and_hangs_up(status: Any) -> None:
    st = gathered(START, "1", status)
    assert st is not None and st.flow_state == "hangup" and st.actions[0].kind == "hangup"
    assert st.responses == [Response("start", 1, "1", "unknown")]
    msg = {"on_human": "speak", "message_text": "Hi", "opt_out_digit": "9"}
    cs = encode_client_state(AttemptRef(1, 1), "message")
    out = flow.step("message", "call.gather.ended", {"digits": "9", "status": status,
                                                     "client_state": cs}, msg, "disabled")
    assert out is not None and out.actions[0].kind == "hangup" and not out.opt_out


def test_a_prompt_whose_end_never_comes_is_hung_up() -> None:
    st = flow.step(None, "call.answered", {}, SETTINGS, "disabled")
    assert st is not None and st.timer_secs == flow.PROMPT_FALLBACK_SECS + 5
    fired = flow.timer_fired(st.flow_state, SETTINGS)
    assert fired is not None and fired.actions[0].kind == "hangup"
    msg = {"on_human": "speak", "message_text": "Hi", "opt_out_digit": "9"}
    m = flow.step(None, "call.answered", {}, msg, "disabled")
    assert m is not None and m.timer_secs is not None
    assert flow.timer_fired("message", msg) is not None
    assert flow.timer_fired("hangup", SETTINGS) is None


TWO_DIGITS: dict[str, Any] = {"on_human": "script", "opt_out_digit": "*", "script": {
    "start": {"say": "Press 10 or 20, or star to stop these calls.", "min_digits": 2,
              "max_digits": 2, "keys": {"10": "hangup", "20": "hangup"}}}}


@pytest.mark.parametrize("digits, status", [("*", "timeout"), ("*", "invalid"), ("**", "valid"),
                                            ("*0", "valid"), ("*1", "invalid")])
def test_the_opt_out_key_starts_an_entry_at_a_step_of_longer_answers(digits: str,
                                                                    status: str) -> None:
    st = flow.step(None, "call.answered", {}, TWO_DIGITS, "disabled")
    assert st is not None and st.flow_state is not None
    assert st.actions[0].valid_digits == "*012"
    cs = encode_client_state(AttemptRef(5, 1), st.flow_state)
    out = flow.step(st.flow_state, "call.gather.ended", {"digits": digits, "status": status,
                                                          "client_state": cs}, TWO_DIGITS,
                    "disabled")
    assert out is not None and out.opt_out and out.responses[0].label == "opt_out"


def test_menu_keys_may_not_start_with_the_opt_out_key() -> None:
    with pytest.raises(InvalidSettings, match="starts with the opt_out_digit"):
        parse_script({"start": {"say": "x", "max_digits": 2, "keys": {"*1": "hangup"}}},
                     opt_out_digit="*")
    cs = encode_client_state(AttemptRef(5, 1), "s0.1.1")
    for digits in ("1*", "10"):  # not starting with it: a wrong or a valid entry
        out = flow.step("s0.1.1", "call.gather.ended", {"digits": digits, "status": "valid",
                                                        "client_state": cs}, TWO_DIGITS,
                        "disabled")
        assert out is not None and not out.opt_out


def test_a_script_problem_does_not_also_blame_the_opt_out_digit() -> None:
    from campaigns.settings import split_and_validate

    with pytest.raises(InvalidSettings) as exc:
        split_and_validate({"from": "+14155550100", "connection_id": "1", "on_human": "script",
                            "opt_out_digit": "9",
                            "script": {"start": {"say": "x", "keys": {"9": "hangup"}}}})
    assert "is the opt_out_digit" in str(exc.value) and "needs on_human" not in str(exc.value)


def test_the_opt_out_key_is_never_the_key_that_ends_an_entry() -> None:
    hash_out = {"on_human": "script", "opt_out_digit": "#",
                "script": {"start": {"say": "Press 1, or # to stop these calls.",
                                     "keys": {"1": "hangup"}}}}
    st = flow.step(None, "call.answered", {}, hash_out, "disabled")
    assert st is not None and st.actions[0].valid_digits == "#1"
    assert st.actions[0].terminating_digit == "*"  # Telnyx's default `#` would swallow it
    msg = flow.step(None, "call.answered", {}, {"on_human": "speak", "message_text": "Hi",
                                                "opt_out_digit": "#"}, "disabled")
    assert msg is not None and msg.actions[0].terminating_digit == "*"
    assert flow.free_key("0123456789*") == "#" and flow.free_key("#*0") == "1"
    with pytest.raises(InvalidSettings, match="every key"):
        parse_script({"start": {"say": "x", "max_digits": 2,
                                "keys": {k: "hangup" for k in "0123456789*#"}}})


def test_a_repeat_key_says_the_prompt_again() -> None:
    settings = {"on_human": "script", "script": {"start": {
        "say": "Press 1 to hear this again, 2 to end.", "keys": {"1": "repeat", "2": "hangup"}}}}
    st = flow.step(None, "call.answered", {}, settings, "disabled")
    assert st is not None and st.flow_state == "s0.1.1"
    cs = encode_client_state(AttemptRef(5, 1), "s0.1.1")
    again = flow.step("s0.1.1", "call.gather.ended", {"digits": "1", "status": "valid",
                                                      "client_state": cs}, settings, "disabled")
    assert again is not None and again.flow_state == "s0.1.2"  # same try, the next prompt
    assert again.actions[0].kind == "gather" and again.responses[0].label == "repeat"


def test_no_input_leading_to_an_end_does_not_complete_the_script() -> None:
    for no_input in ("hangup", "bye"):
        settings = {"on_human": "script", "script": {
            "start": {"say": "Press 1.", "keys": {"1": "bye"}, "no_input": no_input},
            "bye": {"say": "Goodbye."}}}
        st = flow.step(None, "call.answered", {}, settings, "disabled")
        assert st is not None and st.flow_state is not None
        cs = encode_client_state(AttemptRef(5, 1), st.flow_state)
        out = flow.step(st.flow_state, "call.gather.ended", {
            "digits": "", "status": "timeout", "client_state": cs}, settings, "disabled")
        assert out is not None and out.script_completed is False, no_input
        pressed = flow.step(st.flow_state, "call.gather.ended", {
            "digits": "1", "status": "valid", "client_state": cs}, settings, "disabled")
        assert pressed is not None and pressed.script_completed is True


@pytest.mark.parametrize("name", ["hangup", "transfer", "opt_out", "repeat"])
def test_action_names_are_not_step_names(name: str) -> None:
    with pytest.raises(InvalidSettings, match="is an action"):
        parse_script({"start": {"say": "x", "keys": {"1": name}}, name: {"say": "y"}})


def test_a_script_runs_only_with_on_human_script() -> None:
    from campaigns.settings import split_and_validate

    with pytest.raises(InvalidSettings, match="has a script but on_human = 'speak'"):
        split_and_validate({"from": "+14155550100", "connection_id": "1", "on_human": "speak",
                            "message_text": "Hi", "script": {"start": {"say": "x"}}})


def test_steps_are_listed_in_the_order_a_call_meets_them() -> None:
    script = parse_script({
        "start": {"say": "x", "next": "menu"},
        "menu": {"say": "m", "keys": {"1": "zz_confirm", "3": "hours", "4": "code"}},
        "hours": {"say": "h", "keys": {"0": "menu"}},
        "code": {"say": "c", "max_digits": 2, "keys": {"12": "zz_confirm", "56": "menu"}},
        "zz_confirm": {"say": "ok"}})
    # Each step before the steps it leads to (ways back to the menu aside), keys in order.
    assert script.flow_order() == ["start", "menu", "hours", "code", "zz_confirm"]


def test_a_repeat_is_recorded_but_is_not_the_contacts_answer() -> None:
    from types import SimpleNamespace

    from dialer.engine.script_events import Notes, collect

    attempt = SimpleNamespace(id=1, contact_id=7, campaign_id=1, phone_e164="+14155550100",
                              flow_state="s1.1.1", script_completed=False)
    campaign = SimpleNamespace(name="c")
    notes = Notes()
    for label in ("middle", "repeat"):
        step = flow.FlowStep("s1.1.2", [], responses=[Response("start", 1, "1", "valid", label)])
        collect(attempt, campaign, step, datetime.now(UTC), notes)  # type: ignore[arg-type]
    assert [r["label"] for r in notes.response_rows] == ["middle", "repeat"]
    assert notes.responses == {7: "middle"}
