"""The call flow of scripts and keypad prompts, pure: given where the call is and an event, the next
flow step (see dialer.engine.flow, which routes here).

A script step's flow state is "s<i>.<try>.<n>": i the step's number in the script (sorted
names), try the prompt's try (1..tries), n the prompt's number in the call (1, 2, ...: a step
visited again, "back to the menu", is a new prompt with its own state). Every prompt is a gather
with `maximum_tries` 1: retries on no input or a wrong key are ours, each with its own flow state
and so its own command_id, and every `call.gather.ended` is recorded as one response. A gather's
client_state carries its flow state (the tag): a `call.gather.ended` whose tag is not the current
state is a duplicate or a late one and changes nothing. A call hangs up after `MAX_PROMPTS`
prompts (a menu that leads back to itself while nobody presses anything).

`digits` from a webhook are untrusted: anything but keypad keys, or more keys than asked, is a
wrong entry (`invalid`) and only its keypad keys, cut to 32, are stored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from campaigns.scripts import DIGITS, Choice, Script, Step, invalid_then_prompt, script_of
from dialer.engine.flow import Action, FlowStep, Response, free_key, prompt_fallback_secs
from dialer.engine.identity import client_state_tag

#: Returned when an event is not one this module handles (flow.step goes on).
NOT_MINE: Any = object()
GATHER_ENDED = "call.gather.ended"
MEDIA_ENDED = ("call.playback.ended", "call.speak.ended")
_STATE = re.compile(r"s(\d{1,4})\.(\d{1,2})(?:\.(\d{1,3}))?")  # no n: written before n existed
#: Prompts in one call at most; then the call hangs up, the script not completed.
MAX_PROMPTS = 50
#: Wait after a prompt without a menu, for the opt-out key only.
OPT_OUT_WAIT_MS = 1000
ENDED_STATUSES = ("call_hangup", "cancelled", "cancelled_amd")
#: The statuses Telnyx documents for `call.gather.ended`; any other is recorded as `unknown`.
STATUSES = ("valid", "invalid", "timeout", *ENDED_STATUSES)



def state_of(idx: int, try_no: int, prompt_no: int) -> str:
    return f"s{idx}.{try_no}.{prompt_no}"


def parse_state(flow_state: str | None) -> tuple[int, int, int] | None:
    """(step number, try, prompt number in the call) of a script prompt's flow state."""
    m = _STATE.fullmatch(flow_state or "")
    return (int(m.group(1)), int(m.group(2)), int(m.group(3) or 1)) if m else None


def clean_digits(value: Any, limit: int = 32) -> tuple[str, bool]:
    """(the keypad keys of `value`, cut to `limit`; whether `value` was only keypad keys)."""
    if not isinstance(value, str):
        return "", value is None
    keys = "".join(c for c in value if c in DIGITS)
    return keys[:limit], keys == value


def _prompt(step: Step, settings: Mapping[str, Any], tag: str, *, invalid: bool) -> Action:
    opt = settings.get("opt_out_digit")
    text, audio, media = step.say, step.audio, step.media_name
    if invalid and step.invalid and text is not None:
        text = invalid_then_prompt(step.invalid, text)
    elif invalid and step.invalid_audio:
        audio, media = step.invalid_audio, None
    if not step.asks and not opt:
        if text is not None:
            return Action("speak", text=text)
        return Action("playback", audio_url=audio, media_name=media)
    keys = set("".join(step.keys)) | ({str(opt)} if opt else set())
    if step.asks:
        lo, hi, wait = step.min_digits, step.max_digits, int(step.timeout * 1000)
    else:
        lo, hi, wait = 1, 1, OPT_OUT_WAIT_MS
    valid = "".join(sorted(keys))
    return Action("gather", text=text, audio_url=audio if text is None else None,
                  media_name=media if text is None else None,
                  valid_digits=valid, min_digits=lo, max_digits=hi,
                  timeout_ms=wait, tag=tag, terminating_digit=free_key(valid))


def enter(script: Script, settings: Mapping[str, Any], name: str, try_no: int = 1, *,
          prompt_no: int = 1, invalid: bool = False, responses: list[Response] | None = None,
          answered: bool = True) -> FlowStep:
    """The prompt of step `name`; `answered`: the call got here by what the person pressed or
    heard, not by a no-input action (only then does a closing step complete the script)."""
    if prompt_no > MAX_PROMPTS + len(script.steps):
        return _hangup(list(responses or []), False)
    step = script.steps[name]
    tag = state_of(script.index(name), try_no, prompt_no)
    out = list(responses or [])
    if step.label and try_no == 1:
        out.append(Response(name, try_no, None, "reached", step.label))
    action = _prompt(step, settings, tag, invalid=invalid)
    # A closing step (no menu, no next) reached from an earlier prompt completes the script: the
    # person has said and heard what was asked, whether or not they hear the goodbye to its end.
    closing = not step.asks and not step.next and prompt_no > 1 and answered
    return FlowStep(tag, [action], responses=out, script_completed=closing,
                    timer_secs=prompt_fallback_secs(action))


def start(settings: Mapping[str, Any]) -> FlowStep:
    script = script_of(settings)
    if script is None:  # on_human=script without a script cannot pass validation
        return FlowStep("hangup", [Action("hangup")])
    return enter(script, settings, "start")


def _opt_out(settings: Mapping[str, Any], responses: list[Response]) -> FlowStep:
    text = str(settings.get("opt_out_message") or "Goodbye.")
    return FlowStep("optout", [Action("speak", text=text)], timer_secs=15.0,
                    responses=responses, opt_out=True, script_completed=True)


def _hangup(responses: list[Response], completed: bool | None) -> FlowStep:
    return FlowStep("hangup", [Action("hangup")], responses=responses,
                    script_completed=completed)


def _choose(script: Script, settings: Mapping[str, Any], choice: Choice,
            responses: list[Response], prompt_no: int, *, answered: bool = True,
            current: Step | None = None, try_no: int = 1) -> FlowStep:
    """`choice` made at prompt number `prompt_no` of step `current` (try `try_no`); `answered`
    False when it is the step's no-input action (the script is then not completed by it)."""
    if choice.kind == "goto" and choice.target:
        return enter(script, settings, choice.target, prompt_no=prompt_no + 1,
                     responses=responses, answered=answered)
    if choice.kind == "repeat" and current is not None:  # "press 1 to hear this again"
        return enter(script, settings, current.name, try_no, prompt_no=prompt_no + 1,
                     responses=responses)
    if choice.kind == "opt_out":
        return _opt_out(settings, responses)
    if choice.kind == "transfer":
        return FlowStep("transfer", [Action("transfer", to=settings.get("transfer_to"))],
                        responses=responses, script_completed=answered)
    return _hangup(responses, answered)


def _after_prompt(script: Script, settings: Mapping[str, Any], step: Step,
                  responses: list[Response], prompt_no: int) -> FlowStep:
    """A prompt without a menu (number `prompt_no`) was heard to its end: the next step, or the
    end of the script."""
    if step.next:
        return enter(script, settings, step.next, prompt_no=prompt_no + 1, responses=responses)
    return _hangup(responses, True)


def step(flow_state: str | None, event_type: str, payload: Mapping[str, Any],
         settings: Mapping[str, Any]) -> FlowStep | None:
    """The next step for a script or keypad event; NOT_MINE for events of the plain flow."""
    if flow_state == "optout":
        return _hangup([], None) if event_type in MEDIA_ENDED else None
    if flow_state == "message":
        if event_type != GATHER_ENDED:
            return NOT_MINE
        return _message_gather(payload, settings)
    pos = parse_state(flow_state)
    if pos is None:
        return None if event_type == GATHER_ENDED else NOT_MINE
    script = script_of(settings)
    current = script.by_index(pos[0]) if script else None
    if script is None or current is None:
        return None
    if event_type in MEDIA_ENDED and not current.asks and not settings.get("opt_out_digit"):
        if payload.get("status") != "completed":
            return None
        return _after_prompt(script, settings, current, [], pos[2])
    if event_type != GATHER_ENDED:
        return None
    if client_state_tag(payload.get("client_state")) != flow_state:
        return None  # an earlier prompt's (duplicate or late)
    return _gathered(script, settings, current, pos[1], pos[2], payload)


def _status(payload: Mapping[str, Any], step: Step | None) -> tuple[str, str]:
    digits, clean = clean_digits(payload.get("digits"))
    status = payload.get("status")
    status = status if status in STATUSES else "unknown"
    if status == "valid" and (not clean or not digits
                              or (step is not None and len(digits) > step.max_digits)):
        status = "invalid"
    return status, digits


def _opts_out_of_entry(payload: Mapping[str, Any], step: Step, opt: Any) -> bool:
    """At a step whose answers are several keys long, the opt-out key alone is no complete entry
    (Telnyx waits for more keys, or ends it as invalid or timed out): an entry of keypad keys
    that starts with it opts out (`campaign create` refuses menu keys that start with it)."""
    digits = payload.get("digits")
    return (bool(opt) and step.max_digits > 1 and isinstance(digits, str)
            and digits[:1] == opt and clean_digits(digits)[1]
            and payload.get("status") in ("valid", "invalid", "timeout"))


def _gathered(script: Script, settings: Mapping[str, Any], current: Step, try_no: int,
              prompt_no: int, payload: Mapping[str, Any]) -> FlowStep:
    status, digits = _status(payload, current)
    opt = settings.get("opt_out_digit")
    name = current.name
    if (status == "valid" and opt and digits == opt) or _opts_out_of_entry(payload, current, opt):
        return _opt_out(settings, [Response(name, try_no, digits, status, "opt_out")])
    if status == "valid" and digits in current.keys:
        choice = current.keys[digits]
        target = script.steps.get(choice.target or "") if choice.kind == "goto" else None
        # The answer's label: its own, else the label (or name) of the step it leads to, else
        # the action.
        label = choice.label or ((target.label or target.name) if target else choice.kind)
        return _choose(script, settings, choice,
                       [Response(name, try_no, digits, status, label or digits)], prompt_no,
                       current=current, try_no=try_no)
    if status in ENDED_STATUSES:
        return FlowStep("done", [], responses=[Response(name, try_no, digits or None, status)])
    if status == "unknown":  # nothing to go on: end the call rather than leave it silent
        return _hangup([Response(name, try_no, digits or None, status)], False)
    response = [Response(name, try_no, digits or None, status if status != "valid" else "invalid")]
    if not current.asks:  # only the opt-out key was listened for: the prompt was heard
        return _after_prompt(script, settings, current, response, prompt_no)
    if status == "timeout" and current.no_input.kind != "repeat":
        return _choose(script, settings, current.no_input, response, prompt_no, answered=False)
    if try_no < current.tries:
        return enter(script, settings, name, try_no + 1, prompt_no=prompt_no + 1,
                     invalid=status != "timeout", responses=response)
    return _hangup(response, False)


def _message_gather(payload: Mapping[str, Any], settings: Mapping[str, Any]) -> FlowStep | None:
    if client_state_tag(payload.get("client_state")) != "message":
        return None
    status, digits = _status(payload, None)
    opt = settings.get("opt_out_digit")
    if status == "valid" and opt and digits == opt:
        out = _opt_out(settings, [Response("message", 1, digits, status, "opt_out")])
        out.script_completed = None  # a message, not a script: as for everyone who heard it
        return out
    heard = status in ("timeout", "valid", "invalid")
    live = heard or status == "unknown"  # the call may still be up: hang it up
    step = FlowStep("hangup" if live else "done", [Action("hangup")] if live else [],
                    message_played=heard,
                    responses=[Response("message", 1, digits or None, status)])
    step.script_completed = None
    return step


def entry_actions(flow_state: str | None, settings: Mapping[str, Any]) -> list[Action]:
    """The prompt of the current step (re-sent after a restart with the same command_id)."""
    if flow_state == "optout":
        return _opt_out(settings, []).actions
    pos = parse_state(flow_state)
    script = script_of(settings) if pos else None
    current = script.by_index(pos[0]) if script and pos else None
    if current is None or pos is None:
        return []
    # The state as stored (an older one without n included): the prompt's tag must match it.
    return [_prompt(current, settings, str(flow_state), invalid=pos[1] > 1)]
