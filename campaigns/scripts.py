"""Call scripts: named steps, each a prompt and (when it asks something) a keypad menu.

Pure. A campaign's TOML holds them under `[script.<step>]`; the call starts at `start`:

    [script.start]
    say = "Hello {first_name|there}. Press 1 to confirm, 2 to speak to us."
    keys = { "1" = "confirm", "2" = "transfer", "3" = "label:reschedule" }
    no_input = "repeat"      # repeat (up to `tries`, then hang up) | hangup | <step> | ...
    tries = 3
    [script.confirm]
    say = "Thank you, see you then."
    label = "confirmed"

A key (or `no_input`) leads to: a step name (go there), `transfer` (to `transfer_to`), `opt_out`
(the number goes on the DNC list, a short confirmation, hang up), `hangup`, or `label:<text>`
(record the label, hang up). A table `{ label = "x", then = "<step>|hangup|transfer|opt_out" }`
does both. A step without keys says its prompt and then goes to `next` (or hangs up).
The campaign's `opt_out_digit` opts out at every step and during a plain message.

Steps are numbered by their sorted names (`index`): the call flow keeps "where the call is" in
a short string, whatever the names' lengths.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from xml.etree import ElementTree
from xml.sax.saxutils import escape

from campaigns.errors import InvalidSettings
from campaigns.templates import Target, is_ssml, length_problem, parse, render, sent_length

START = "start"
TERMINAL = ("hangup", "transfer", "opt_out")
DIGITS = "0123456789*#"
_STEP_NAME = re.compile(r"[A-Za-z0-9_-]{1,40}")
_STEP_KEYS = {"say", "audio", "media_name", "invalid", "invalid_audio", "keys", "no_input",
              "tries", "min_digits", "max_digits", "timeout", "label", "next"}
MAX_PROMPT = 3000
_SPEAK = re.compile(r"\s*<speak\b[^>]*>(.*)</speak>\s*", re.DOTALL)


def _ssml_body(text: str) -> str:
    """The content of an SSML text's <speak> element; a plain text escaped to go inside one."""
    m = _SPEAK.fullmatch(text)
    return m.group(1) if m else escape(text)


def invalid_then_prompt(invalid: str, prompt: str) -> str:
    """What is said after a wrong key: the step's `invalid` text, then its prompt again. When
    either is SSML the result is one SSML document (never a <speak> inside a text)."""
    if not is_ssml(invalid) and not is_ssml(prompt):
        return f"{invalid} {prompt}"
    return f"<speak>{_ssml_body(invalid)} {_ssml_body(prompt)}</speak>"


def _ssml_problem(text: str) -> str | None:
    """Why an SSML text (fields taken as plain words) is not a well-formed document, or None."""
    if not is_ssml(text):
        return None
    try:
        ElementTree.fromstring(render(text, {}, "speech"))  # fields empty or their defaults
    except ElementTree.ParseError as exc:
        return f"is not well-formed SSML ({exc})"
    except InvalidSettings:
        return None  # a template syntax error, reported on its own
    return None


@dataclass(frozen=True)
class Choice:
    """What an answer does: `goto` a step, or end the call (`hangup`, `transfer`, `opt_out`);
    `label` is recorded as the answer."""

    kind: str  # goto | hangup | transfer | opt_out | repeat
    target: str | None = None
    label: str | None = None


@dataclass(frozen=True)
class Step:
    name: str
    say: str | None = None
    audio: str | None = None
    media_name: str | None = None
    invalid: str | None = None
    invalid_audio: str | None = None
    keys: Mapping[str, Choice] = field(default_factory=dict)
    no_input: Choice = Choice("repeat")
    tries: int = 3
    min_digits: int = 1
    max_digits: int = 1
    timeout: float = 5.0
    label: str | None = None
    next: str | None = None

    @property
    def asks(self) -> bool:
        return bool(self.keys)


@dataclass(frozen=True)
class Script:
    steps: Mapping[str, Step]

    @property
    def names(self) -> list[str]:
        return sorted(self.steps)

    def index(self, name: str) -> int:
        return self.names.index(name)

    def by_index(self, idx: int) -> Step | None:
        names = self.names
        return self.steps[names[idx]] if 0 <= idx < len(names) else None

    def flow_order(self) -> list[str]:
        """Step names in the order a call meets them: a step before every step it leads to
        (ignoring the ways back, "to the menu"), from `start`, keys in key order; steps never
        reached last, by name. (Reverse postorder of a depth-first walk.)"""
        done: list[str] = []
        seen = {START}
        # Children in reverse key order: reversing the postorder puts them back in key order.
        stack = [(START, reversed(self._targets(START)))]
        while stack:
            name, targets = stack[-1]
            nxt = next((t for t in targets if t not in seen), None)
            if nxt is None:
                done.append(name)
                stack.pop()
            else:
                seen.add(nxt)
                stack.append((nxt, reversed(self._targets(nxt))))
        order = done[::-1]
        return order + sorted(set(self.steps) - set(order))

    def _targets(self, name: str) -> list[str]:
        return [t for t in _edges(self.steps[name]) if t in self.steps]

    def prompts(self) -> list[tuple[str, str, Target]]:
        """Every templated prompt, for campaigns.templates validation."""
        out: list[tuple[str, str, Target]] = []
        for s in self.steps.values():
            for attr, target in (("say", "speech"), ("invalid", "speech"), ("audio", "url"),
                                 ("invalid_audio", "url")):
                value = getattr(s, attr)
                if value:
                    out.append((f"script.{s.name}.{attr}", value, target))  # type: ignore[arg-type]
        return out


def _choice(where: str, value: Any, problems: list[str]) -> Choice:
    if isinstance(value, Mapping):
        extra = set(value) - {"label", "then"}
        if extra:
            problems.append(f"{where}: unknown key(s) {', '.join(sorted(extra))} (label, then)")
        label = value.get("label")
        then = value.get("then", "hangup")
        if label is not None and not isinstance(label, str):
            problems.append(f"{where}.label: must be text")
            label = None
        base = _choice(where, then, problems)
        return Choice(base.kind, base.target, label or base.label)
    if not isinstance(value, str) or not value.strip():
        problems.append(f"{where}: must be a step name, hangup, transfer, opt_out or label:<text>")
        return Choice("hangup")
    value = value.strip()
    if value.startswith("label:"):
        label = value[6:].strip()
        if not label:
            problems.append(f"{where}: label: needs a text")
        return Choice("hangup", label=label or None)
    if value in TERMINAL:
        return Choice(value)
    if value == "repeat":
        return Choice("repeat")
    return Choice("goto", value)


def _int(where: str, raw: Mapping[str, Any], key: str, default: int, lo: int, hi: int,
         problems: list[str]) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        problems.append(f"{where}.{key}: must be a whole number from {lo} to {hi}")
        return default
    return value


def _text(where: str, raw: Mapping[str, Any], key: str, problems: list[str]) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        problems.append(f"{where}.{key}: must be a non-empty text")
        return None
    if len(value) > MAX_PROMPT and key not in ("say", "invalid"):  # those: as sent, below
        problems.append(f"{where}.{key}: longer than {MAX_PROMPT} characters (Telnyx's limit)")
    try:
        parse(value)
    except InvalidSettings as exc:
        problems.append(f"{where}.{key}: {exc}")
    return value


def _authoring_problems(where: str, raw: Mapping[str, Any], say: str | None,
                        invalid: str | None, invalid_audio: str | None,
                        keys: Mapping[str, Choice]) -> list[str]:
    """Settings that would be silently ignored or break a call, refused when a script is written
    (`campaign create`/`set`), not when a stored script is read for a call."""
    out = []
    for key, text in (("say", say), ("invalid", invalid)):
        ssml = _ssml_problem(text) if text else None
        if ssml:
            out.append(f"{where}.{key}: {ssml}")
    media = raw.get("media_name")
    if isinstance(media, str) and ("{" in media or "}" in media):
        out.append(f"{where}.media_name: names a stored media file; it cannot name contact "
                   "fields (use audio with a URL template)")
    if invalid is not None and say is None:
        out.append(f"{where}.invalid: is said before a `say` prompt; this step has none "
                   "(use invalid_audio)")
    if invalid_audio is not None and say is not None:
        out.append(f"{where}.invalid_audio: is for audio prompts; this step says a text "
                   "(use invalid)")
    if not keys:
        for key in ("no_input", "invalid", "invalid_audio"):
            if key in raw:
                out.append(f"{where}.{key}: is for steps with keys; this step has none")
    texts = [(f"{where}.say", say), (f"{where}.invalid", invalid)]
    if invalid and say:  # said together after a wrong key
        texts.append((f"{where}.invalid + say", invalid_then_prompt(invalid, say)))
    for name, text in texts:
        problem = length_problem(name, sent_length(text)) if text else None
        if problem:
            out.append(problem)
    return out


def _step(name: str, raw: Any, problems: list[str], strict: bool = False) -> Step:
    where = f"script.{name}"
    if not _STEP_NAME.fullmatch(name):
        problems.append(f"{where}: step names are 1-40 letters, digits, _ or -")
    if not isinstance(raw, Mapping):
        problems.append(f"{where}: must be a table ([script.{name}])")
        return Step(name)
    unknown = set(raw) - _STEP_KEYS
    if unknown:
        problems.append(f"{where}: unknown key(s) {', '.join(sorted(unknown))} "
                        f"(known: {', '.join(sorted(_STEP_KEYS))})")
    say, audio = _text(where, raw, "say", problems), _text(where, raw, "audio", problems)
    media = _text(where, raw, "media_name", problems)
    if sum(x is not None for x in (say, audio, media)) != 1:
        problems.append(f"{where}: needs exactly one prompt: say, audio or media_name")
    keys: dict[str, Choice] = {}
    raw_keys = raw.get("keys", {})
    if not isinstance(raw_keys, Mapping):
        problems.append(f"{where}.keys: must be a table like {{ \"1\" = \"confirm\" }}")
        raw_keys = {}
    min_d = _int(where, raw, "min_digits", 1, 1, 128, problems)
    max_d = _int(where, raw, "max_digits", max(1, min_d), 1, 128, problems)
    if max_d < min_d:
        problems.append(f"{where}: max_digits is below min_digits")
    for digits, value in raw_keys.items():
        digits = str(digits)
        if not digits or any(c not in DIGITS for c in digits):
            problems.append(f"{where}.keys: {digits!r} is not keypad digits (0-9, * and #)")
            continue
        if not min_d <= len(digits) <= max_d:
            problems.append(f"{where}.keys: {digits!r} has {len(digits)} digits, outside "
                            f"min_digits..max_digits ({min_d}..{max_d})")
        keys[digits] = _choice(f"{where}.keys.{digits}", value, problems)
    no_input = _choice(f"{where}.no_input", raw.get("no_input", "repeat"), problems)
    timeout = raw.get("timeout", 5)
    if (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
            or not 1 <= timeout <= 120):
        problems.append(f"{where}.timeout: must be 1 to 120 seconds")
        timeout = 5
    nxt = raw.get("next")
    if nxt is not None and not isinstance(nxt, str):
        problems.append(f"{where}.next: must be a step name")
        nxt = None
    if nxt is not None and keys:
        problems.append(f"{where}: next is for steps without keys (use the keys' actions)")
    label = raw.get("label")
    if label is not None and not isinstance(label, str):
        problems.append(f"{where}.label: must be text")
        label = None
    invalid = _text(where, raw, "invalid", problems)
    invalid_audio = _text(where, raw, "invalid_audio", problems)
    if strict:
        problems.extend(_authoring_problems(where, raw, say, invalid, invalid_audio, keys))
    return Step(name, say=say, audio=audio, media_name=media,
                invalid=invalid, invalid_audio=invalid_audio, keys=keys,
                no_input=no_input, tries=_int(where, raw, "tries", 3, 1, 10, problems),
                min_digits=min_d, max_digits=max_d, timeout=float(timeout), label=label,
                next=nxt)


def _edges(step: Step) -> list[str]:
    """The steps `step` leads to: its keys' (in key order) and no-input action's, then `next`."""
    choices = [*(step.keys[k] for k in sorted(step.keys)), step.no_input] if step.asks else []
    out = [c.target for c in choices if c.kind == "goto" and c.target]
    if step.next:
        out.append(step.next)
    return out


def _exits(step: Step) -> bool:
    """The call can end at this step without going to another one."""
    if not step.asks:
        return step.next is None
    choices = [*step.keys.values(), step.no_input]
    return any(c.kind in ("hangup", "transfer", "opt_out", "repeat") for c in choices)


def parse_script(raw: Any, *, opt_out_digit: str | None = None,
                 transfer_to: str | None = None, strict: bool = True) -> Script:
    """A validated script; InvalidSettings lists every problem (unknown and unreachable steps,
    loops without an exit, bad digits). `strict=False` (reading a stored script for a call)
    skips the checks added after scripts were first stored, so a campaign created before them
    keeps running."""
    problems: list[str] = []
    if not isinstance(raw, Mapping) or not raw:
        raise InvalidSettings("script: must hold steps, like [script.start]")
    steps = {str(n): _step(str(n), v, problems, strict) for n, v in raw.items()}
    if START not in steps:
        problems.append("script: needs a step named start ([script.start]): calls begin there")
    for s in steps.values():
        for target in _edges(s):
            if target not in steps:
                problems.append(f"script.{s.name}: goes to unknown step {target!r} "
                                f"(steps: {', '.join(sorted(steps))})")
        for digits, c in s.keys.items():
            if opt_out_digit and digits == opt_out_digit and c.kind != "opt_out":
                problems.append(f"script.{s.name}.keys: {digits!r} is the opt_out_digit; it "
                                "opts out at every step and cannot do anything else")
            elif strict and opt_out_digit and len(digits) > 1 and digits[0] == opt_out_digit:
                problems.append(f"script.{s.name}.keys: {digits!r} starts with the "
                                "opt_out_digit; an entry that starts with it opts out")
            if c.kind == "transfer" and not transfer_to:
                problems.append(f"script.{s.name}.keys.{digits}: transfer needs transfer_to")
        if strict and s.name in (*TERMINAL, "repeat"):
            problems.append(f"script.{s.name}: {s.name!r} is an action (hangup, transfer, "
                            "opt_out, repeat), not a step name: rename the step")
        used = set("".join(s.keys)) | ({opt_out_digit} if opt_out_digit else set())
        if strict and s.asks and used >= set(DIGITS):
            problems.append(f"script.{s.name}.keys: every key (0-9, * and #) is used; leave one "
                            "free to end an entry (Telnyx's terminating key)")
        if s.no_input.kind == "transfer" and not transfer_to:
            problems.append(f"script.{s.name}.no_input: transfer needs transfer_to")
    if not problems and strict:  # a stored script's graph was checked when it was written
        problems.extend(_graph_problems(steps))
    if problems:
        raise InvalidSettings("; ".join(problems))
    return Script(steps)


def _graph_problems(steps: Mapping[str, Step]) -> list[str]:
    reach, todo = {START}, [START]
    while todo:
        for t in _edges(steps[todo.pop()]):
            if t not in reach:
                reach.add(t)
                todo.append(t)
    problems = [f"script.{n}: unreachable from start (no key, no_input or next leads there)"
                for n in sorted(set(steps) - reach)]
    # Steps from which the call can end: an exit, or an edge to such a step.
    can_end = {n for n in reach if _exits(steps[n])}
    changed = True
    while changed:
        changed = False
        for n in reach - can_end:
            if any(t in can_end for t in _edges(steps[n])):
                can_end.add(n)
                changed = True
    stuck = sorted(reach - can_end)
    if stuck:
        problems.append(f"script: steps {', '.join(stuck)} loop without an exit (no key, "
                        "no_input or step of the loop hangs up, transfers or opts out)")
    return problems


def script_of(settings: Mapping[str, Any]) -> Script | None:
    """The campaign's script (already validated at create), or None. Parsed once per distinct
    script: the event processor asks for it on every keypad event."""
    raw = settings.get("script")
    if not raw:
        return None
    return _cached(json.dumps(raw, sort_keys=True), settings.get("opt_out_digit"),
                   settings.get("transfer_to"))


@lru_cache(maxsize=64)
def _cached(raw: str, opt_out_digit: str | None, transfer_to: str | None) -> Script:
    return parse_script(json.loads(raw), opt_out_digit=opt_out_digit, transfer_to=transfer_to,
                        strict=False)
