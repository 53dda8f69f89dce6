"""The AMD call flow as a pure state machine: given where an attempt's flow is and an event, what
to do next. The processor persists `flow_state` and runs the actions after its transaction commits.

Flow states: None (not answered yet), "awaiting_amd", "message" (playing/speaking to a person),
"transfer", "awaiting_greeting" (machine: waiting for the greeting to end), "voicemail"
(playing the voicemail), "optout" (saying the opt-out confirmation), "hangup" (we hung up), "done",
and "s<i>.<try>" (at step number i of the call script, its try-th prompt; see script_flow).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from campaigns import outcomes as o

AMD_DISABLED = "disabled"
#: Modes whose greeting-ended event we may wait for. `detect` never sends one; `detect_beep` and
#: `premium` only on a beep, so the fallback timer covers the rest.
MODES_WITH_GREETING = ("greeting_end", "detect_words", "detect_beep", "premium")
GREETING_EVENTS = ("call.machine.greeting.ended", "call.machine.premium.greeting.ended")
DETECTION_EVENTS = ("call.machine.detection.ended", "call.machine.premium.detection.ended")
MEDIA_ENDED = ("call.playback.ended", "call.speak.ended")
GATHER_ENDED = "call.gather.ended"


#: A keypad prompt normally ends with its `call.gather.ended`; if that never comes (a webhook
#: lost for good), the call hangs up this long after the prompt plus its timeout instead of
#: staying up in silence. Long enough for Telnyx's longest prompt (3,000 characters).
PROMPT_FALLBACK_SECS = 300.0


@dataclass(frozen=True)
class Action:
    kind: str  # hangup | playback | speak | transfer | gather
    audio_url: str | None = None
    media_name: str | None = None
    text: str | None = None
    to: str | None = None
    #: gather: the keys accepted, how many, how long to wait after the prompt.
    valid_digits: str | None = None
    min_digits: int = 1
    max_digits: int = 1
    timeout_ms: int = 5000
    #: gather: the flow state it belongs to; its webhooks carry it in their client_state.
    tag: str | None = None
    #: gather: the key that ends an entry (Telnyx's default `#` would never reach us as a key).
    terminating_digit: str | None = None
    #: The client_state the command sets (the attempt's, with the tag); set by the processor.
    client_state: str | None = None
    #: text is SSML (templates render to SSML).
    ssml: bool = False
    #: The first action for a person: when the verdict came (AMD result, or the answer without
    #: AMD), to measure how soon the person hears something (set by the processor).
    verdict_at: datetime | None = None

    @property
    def key(self) -> str:
        """Distinguishes actions of one attempt for per-action command_ids."""
        return self.kind


@dataclass
class FlowStep:
    flow_state: str | None
    actions: list[Action] = field(default_factory=list)
    #: Seconds until the flow's fallback timer fires (None: clear it).
    timer_secs: float | None = None
    voicemail_left: bool | None = None
    message_played: bool | None = None
    #: Keypad answers to record (script steps and the plain message's opt-out prompt).
    responses: list[Response] = field(default_factory=list)
    #: The callee pressed the opt-out digit: the number goes on the DNC list.
    opt_out: bool = False
    #: True: the script reached its end; False: the script started (not yet ended).
    script_completed: bool | None = None


@dataclass(frozen=True)
class Response:
    """One keypad prompt's result: the step (or "message"), which try, the digits pressed (cleaned),
    how the gather ended (`status`, or "reached" for a labelled step), and the answer's label."""

    step: str
    try_no: int
    digits: str | None
    status: str
    label: str | None = None


def _human_step(settings: Mapping[str, Any]) -> FlowStep:
    on_human = settings.get("on_human", "hangup")
    if on_human == "script":
        from dialer.engine import script_flow
        return script_flow.start(settings)
    opt = settings.get("opt_out_digit")
    if opt and on_human in ("play", "speak"):
        # The opt-out key is heard throughout the message: the message is a keypad prompt.
        gather = Action(
            "gather", audio_url=settings.get("message_audio_url"),
            media_name=settings.get("message_media_name"),
            text=settings.get("message_text") if on_human == "speak" else None,
            valid_digits=str(opt), timeout_ms=1000, tag="message",
            terminating_digit=free_key(str(opt)))
        return FlowStep("message", [gather], timer_secs=prompt_fallback_secs(gather))
    if on_human == "play":
        return FlowStep("message", [Action("playback", audio_url=settings.get("message_audio_url"),
                                           media_name=settings.get("message_media_name"))])
    if on_human == "speak":
        return FlowStep("message", [Action("speak", text=settings.get("message_text"))])
    if on_human == "transfer":
        return FlowStep("transfer", [Action("transfer", to=settings.get("transfer_to"))])
    return FlowStep("hangup", [Action("hangup")])


def _voicemail_action(settings: Mapping[str, Any]) -> Action:
    if settings.get("voicemail_audio_url") or settings.get("voicemail_media_name"):
        return Action("playback", audio_url=settings.get("voicemail_audio_url"),
                      media_name=settings.get("voicemail_media_name"))
    return Action("speak", text=settings.get("voicemail_text"))


def _machine_step(settings: Mapping[str, Any], amd_mode: str, beep_already: bool) -> FlowStep:
    if settings.get("on_machine") != "voicemail":
        return FlowStep("hangup", [Action("hangup")])
    if beep_already:
        return FlowStep("voicemail", [_voicemail_action(settings)])
    wait = float(settings.get("voicemail_wait_secs", 20))
    return FlowStep("awaiting_greeting", [], timer_secs=wait)


def step(flow_state: str | None, event_type: str, payload: Mapping[str, Any],
         settings: Mapping[str, Any], amd_mode: str, *,
         greeting_seen: bool = False) -> FlowStep | None:
    """The next flow step for an event, or None when the event changes nothing in the flow.

    Events after the flow reached a terminal state (hangup/done) change nothing: duplicates and
    late arrivals are harmless.
    """
    if flow_state in ("hangup", "done"):
        return None
    if event_type == GATHER_ENDED or (flow_state or "").startswith("s") or flow_state == "optout":
        from dialer.engine import script_flow
        handled = script_flow.step(flow_state, event_type, payload, settings)
        if handled is not script_flow.NOT_MINE:
            return handled
    if event_type == "call.answered":
        if flow_state is not None:
            return None
        if amd_mode == AMD_DISABLED:
            return _human_step(settings)
        return FlowStep("awaiting_amd")

    if event_type in DETECTION_EVENTS:
        if flow_state not in (None, "awaiting_amd"):
            return None
        outcome = o.AMD_OUTCOMES.get(str(payload.get("result")), o.SILENCE)
        if outcome == o.HUMAN:
            return _human_step(settings)
        if outcome == o.MACHINE:
            return _machine_step(settings, amd_mode, beep_already=greeting_seen)
        return FlowStep("hangup", [Action("hangup")])  # fax, silence, not_sure

    if event_type in GREETING_EVENTS:
        result = str(payload.get("result"))
        if flow_state in (None, "awaiting_amd") and result == "beep_detected":
            # premium: a beep before detection ends sends only the greeting event.
            return _machine_step(settings, amd_mode, beep_already=True)
        if flow_state == "awaiting_greeting":
            return FlowStep("voicemail", [_voicemail_action(settings)], timer_secs=None)
        return None

    if event_type in MEDIA_ENDED:
        completed = payload.get("status") == "completed"
        if flow_state == "message":
            return FlowStep("hangup", [Action("hangup")], message_played=completed)
        if flow_state == "voicemail":
            return FlowStep("hangup", [Action("hangup")], voicemail_left=completed)
        return None
    return None


def entry_actions(flow_state: str | None, settings: Mapping[str, Any]) -> list[Action]:
    """The actions sent on entering `flow_state`. A crash between the commit of a flow step and
    the sending of its actions loses them; after a restart they are sent again with the same
    command_id (Telnyx ignores a repeat on the same call)."""
    if flow_state == "message" and settings.get("on_human") == "script":
        return []
    if flow_state in ("message", "transfer"):
        human = _human_step(settings)
        return human.actions if human.flow_state == flow_state else []
    if flow_state == "voicemail":
        return [_voicemail_action(settings)]
    if flow_state == "hangup":
        return [Action("hangup")]
    if flow_state == "optout" or (flow_state or "").startswith("s"):
        from dialer.engine import script_flow
        return script_flow.entry_actions(flow_state, settings)
    return []


def free_key(valid_digits: str) -> str:
    """A key that ends an entry without being one (`terminating_digit`): Telnyx's default `#`,
    else `*`, else the first digit that is not a valid key; never a valid key (a `#` opt-out
    key would otherwise end every entry instead of opting out)."""
    return next((k for k in "#*0123456789" if k not in valid_digits), "#")


def prompt_fallback_secs(action: Action) -> float:
    """When to hang up a call whose prompt's end never came (PROMPT_FALLBACK_SECS)."""
    return PROMPT_FALLBACK_SECS + (action.timeout_ms / 1000 if action.kind == "gather" else 0)


def timer_fired(flow_state: str | None, settings: Mapping[str, Any]) -> FlowStep | None:
    """The flow's fallback timers: no greeting event came, leave the voicemail anyway; a keypad
    prompt's or the opt-out confirmation's end never came, hang up."""
    from dialer.engine import script_flow
    if flow_state == "awaiting_greeting":
        return FlowStep("voicemail", [_voicemail_action(settings)], timer_secs=None)
    if flow_state in ("optout", "message") or script_flow.parse_state(flow_state) is not None:
        return FlowStep("hangup", [Action("hangup")])
    return None
