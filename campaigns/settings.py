"""Campaign settings: the dialer's own keys, and the split of a flat settings mapping (TOML keys and
CLI flags share one namespace) into Telnyx dial fields and dialer keys.

Pure: validation returns or raises; nothing here touches a database.
"""

from __future__ import annotations

import difflib
import json
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from campaigns.errors import InvalidSettings
from campaigns.outcomes import RETRYABLE_BY_DEFAULT
from campaigns.telnyx_schema.fields import (
    INVALID,
    MISSING,
    NOT_E164,
    FieldProblem,
    FieldSpec,
    check_value,
)
from campaigns.telnyx_schema.speech import SPEAK_LANGUAGES, VOICE_PROVIDERS
from campaigns.windows import CallingWindow, WindowError

E164_RE = r"^\+[1-9]\d{1,14}$"

#: `voice`: male / female, or a provider's voice (campaigns.telnyx_schema.speech); the characters
#: a voice id is written with.
VOICE_RE = (r"^(male|female|(" + "|".join(VOICE_PROVIDERS)
            + r")(\.[A-Za-z0-9_][A-Za-z0-9_.:-]*)?)$")


def _s(name: str, kind: Any, help: str, **kw: Any) -> FieldSpec:
    return FieldSpec(name=name, kind=kind, help=help, **kw)


#: The dialer's own campaign keys, in documentation order.
OWN_FIELDS: dict[str, FieldSpec] = {
    f.name: f
    for f in [
        _s("cps", "float", "Dials per second for this campaign (at most the account limit); "
           "unset shares the account limit", minimum=0.1, maximum=1000),
        _s("max_concurrent", "int", "Calls in flight at once for this campaign", minimum=1,
           maximum=10000, default=10),
        _s("max_attempts", "int", "Calls to one contact at most", minimum=1, maximum=20, default=3),
        _s("calling_hours", "str", "Local calling window of the contact, HH:MM-HH:MM "
           "(00:00-24:00 is all day)", default="09:00-20:00"),
        _s("calling_days", "str", "Days calls may be placed, local to the contact: mon-sat, "
           "mon,wed,fri, mon-fri,sun", default="mon-sat"),
        _s("fallback_timezone", "str", "IANA zone for contacts whose zone is unknown",
           default="America/New_York"),
        _s("on_human", "str", "What to do when a person answers",
           enum=("play", "speak", "transfer", "hangup", "script"), default="hangup"),
        _s("on_machine", "str", "What to do when an answering machine answers",
           enum=("hangup", "voicemail"), default="hangup"),
        _s("message_audio_url", "str", "Audio (WAV/MP3 URL) played to a person (on_human=play)"),
        _s("message_media_name", "str", "Uploaded media played to a person (on_human=play)"),
        _s("message_text", "str", "Text spoken to a person (on_human=speak)"),
        _s("voicemail_audio_url", "str", "Audio URL left as voicemail (on_machine=voicemail)"),
        _s("voicemail_media_name", "str", "Uploaded media left as voicemail"),
        _s("voicemail_text", "str", "Text spoken as voicemail (when no voicemail audio)"),
        _s("voice", "str", "Voice for spoken text: male, female, or a provider's voice like "
           "Polly.Joanna, AWS.Polly.Joanna-Neural, Azure.en-US-AvaNeural, Telnyx.KokoroTTS.af",
           default="female", pattern=VOICE_RE,
           pattern_help="must be male, female, or a provider's voice <Provider>.<Model>.<VoiceId> "
           f"with provider {', '.join(VOICE_PROVIDERS)} (e.g. AWS.Polly.Joanna, "
           "Azure.en-US-AvaNeural, Telnyx.KokoroTTS.af)"),
        _s("language", "str", "Language for spoken text (ignored by Polly voices)",
           default="en-US", enum=SPEAK_LANGUAGES),
        _s("transfer_to", "str", "Agent number a person is transferred to (on_human=transfer)",
           pattern=r"^(\+[1-9]\d{1,14}|\{[^{}|]+(\|\+[1-9]\d{1,14})?\})$",
           pattern_help="must be a +E164 number like +14155550100, or exactly one field like "
           "{agent_phone} (optionally with a +E164 default: {agent_phone|+14155550100})"),
        _s("script", "object", "The call script run for a person (on_human=script): "
           "[script.<step>] tables, see docs/scripts.md"),
        _s("opt_out_digit", "str", "Key that puts the number on the DNC list at any step of a "
           "script and during a spoken or played message", pattern=r"^[0-9*#]$",
           pattern_help="must be one keypad key: 0-9, * or #"),
        _s("opt_out_message", "str", "Said after an opt-out, before hanging up",
           default="You will not be called again. Goodbye."),
        _s("retry_incomplete", "bool", "Retry contacts who answered but did not finish the script",
           default=False),
        _s("retry_incomplete_secs", "float", "Delay before retrying an unfinished script",
           minimum=0, maximum=30 * 86400, default=3600),
        _s("voicemail_wait_secs", "float", "Leave the voicemail after this long when no "
           "greeting-ended event comes", minimum=1, maximum=120, default=20),
        _s("retry_on", "str_or_array", "Outcomes that are retried: busy, no_answer, machine, "
           "silence, failed, rejected", default=list(RETRYABLE_BY_DEFAULT)),
        _s("retry_busy_secs", "float", "Delay before retrying a busy number", minimum=0,
           maximum=30 * 86400, default=300),
        _s("retry_no_answer_secs", "float", "Delay before retrying an unanswered number",
           minimum=0, maximum=30 * 86400, default=3600),
        _s("retry_machine_secs", "float", "Delay before retrying a machine (no voicemail left)",
           minimum=0, maximum=30 * 86400, default=7200),
        _s("retry_silence_secs", "float", "Delay before retrying after silence", minimum=0,
           maximum=30 * 86400, default=3600),
        _s("retry_failed_secs", "float", "Delay before retrying a failed call", minimum=0,
           maximum=30 * 86400, default=900),
        _s("retry_rejected_secs", "float", "Delay before the one retry of a rejected call",
           minimum=0, maximum=30 * 86400, default=86400),
        _s("retry_jitter_secs", "float", "Random extra delay (0..N s) added to each retry",
           minimum=0, maximum=86400, default=60),
        _s("compliance_rules", "str", "on: the federal floor and the state rules of the rules "
           "file apply at dial time (docs/compliance.md); off: only the campaign window (calls "
           "that are not telemarketing, simulator runs)", enum=("on", "off"), default="on"),
        _s("rules_file", "str", "Rules file (CSV) replacing the shipped one for this campaign"),
        _s("require_consent", "bool", "Dial only contacts whose consent column says written "
           "(or gives the date of written consent)", default=False),
        _s("registry_scrub", "bool", "Require a national DNC registry copy at most 31 days old: "
           "the campaign does not start, and is not dialed, without one", default=False),
    ]
}

#: Keys held in their own columns.
CORE_KEYS = ("from", "connection_id")


def with_defaults(values: Mapping[str, Any]) -> dict[str, Any]:
    merged = {k: f.default for k, f in OWN_FIELDS.items() if f.default is not None}
    merged.update(values)
    if isinstance(merged.get("retry_on"), str):
        merged["retry_on"] = [p.strip() for p in merged["retry_on"].split(",") if p.strip()]
    return merged


class CampaignSettings(Mapping[str, Any]):
    """A campaign's own settings with their defaults filled in: read-only, one object wherever
    the engine and the domain need them, with typed accessors for the keys they use most."""

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, Any] | None) -> None:
        self._values = with_defaults(values or {})

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"CampaignSettings({self._values!r})"

    @property
    def cps(self) -> float | None:
        """The campaign's own dials per second (None: the account's)."""
        value = self._values.get("cps")
        return float(value) if value else None

    @property
    def max_concurrent(self) -> int:
        return int(self._values["max_concurrent"])

    @property
    def max_attempts(self) -> int:
        return int(self._values["max_attempts"])

    @property
    def window(self) -> CallingWindow:
        return CallingWindow.parse(self._values["calling_hours"], self._values["calling_days"])

    @property
    def fallback_timezone(self) -> str:
        return str(self._values["fallback_timezone"])

    @property
    def retry_outcomes(self) -> frozenset[str]:
        return frozenset(self._values["retry_on"])


class _HasSettings(Protocol):
    settings: Any


def settings_of(campaign: _HasSettings) -> CampaignSettings:
    """The settings of a campaign row (with defaults); parsed once for a row that keeps them
    (`parsed_settings`, the engine's plain campaign rows)."""
    parsed = getattr(campaign, "parsed_settings", None)
    if isinstance(parsed, CampaignSettings):
        return parsed
    return CampaignSettings(campaign.settings)


def load_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise InvalidSettings(f"campaign file {str(path)!r} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise InvalidSettings(f"campaign file {str(path)!r} is not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:  # TOML is UTF-8 text: a binary or UTF-16 file
        raise InvalidSettings(f"campaign file {str(path)!r} is not a TOML text file: byte "
                              f"0x{exc.object[exc.start:exc.start + 1].hex()} at offset "
                              f"{exc.start} is not UTF-8") from None
    except IsADirectoryError:
        raise InvalidSettings(f"campaign file {str(path)!r} is a folder") from None
    except OSError as exc:
        raise InvalidSettings(f"cannot read campaign file {str(path)!r}: {exc.strerror}") from None


@dataclass(frozen=True)
class SplitSettings:
    from_number: str
    connection_id: str
    dial_settings: dict[str, Any]
    settings: dict[str, Any]


def split_and_validate(values: Mapping[str, Any]) -> SplitSettings:
    """Validate a flat mapping of campaign settings and split it by where each key lives.

    Raises InvalidSettings naming every bad field and what it accepts.
    """
    from campaigns.telnyx_schema.dial import CAMPAIGN_DIAL_FIELDS, validate_campaign_dial_settings

    problems: list[FieldProblem] = []
    dial: dict[str, Any] = {}
    own: dict[str, Any] = {}
    for key, value in values.items():
        if key in CORE_KEYS:
            continue
        if key in OWN_FIELDS:
            own[key] = value
        elif key in CAMPAIGN_DIAL_FIELDS:
            dial[key] = value
        else:
            known = [*OWN_FIELDS, *CAMPAIGN_DIAL_FIELDS, *CORE_KEYS]
            close = difflib.get_close_matches(key, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(FieldProblem(key, INVALID, "Unknown setting",
                                         f"is not a campaign setting{hint}"))

    from_number = values.get("from")
    connection_id = values.get("connection_id")
    if not from_number:
        problems.append(FieldProblem("from", MISSING, "Missing required parameter",
                                     "is required (--from +E164)"))
    elif not isinstance(from_number, str) or not re.fullmatch(E164_RE, from_number):
        problems.append(FieldProblem("from", NOT_E164, "Invalid phone number",
                                     f"{from_number!r} is not a +E164 number like +14155550100"))
    if connection_id is None or str(connection_id).strip() == "":
        problems.append(FieldProblem("connection_id", MISSING, "Missing required parameter",
                                     "is required (--connection-id ID)"))

    problems.extend(validate_campaign_dial_settings(dial))
    own_full = with_defaults(own)
    problems.extend(validate_own(own_full))
    for key, value in {**dial, **own}.items():  # nested values too: stored and sent as JSON
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            if not any(p.field == key for p in problems):
                problems.append(FieldProblem(key, INVALID, "Invalid parameter type",
                                             "must hold only strings, finite numbers, booleans, "
                                             "lists and tables (no dates, times or NaN)"))
    if problems:
        raise InvalidSettings("; ".join(str(p) for p in problems))
    return SplitSettings(str(from_number), str(connection_id), dial, own_full)


def validate_own(values: Mapping[str, Any]) -> list[FieldProblem]:
    """Check the dialer's own keys, each alone and together."""
    problems: list[FieldProblem] = []
    for key, value in values.items():
        spec = OWN_FIELDS[key]
        if spec.kind == "float" and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        problem = check_value(spec, value)
        if problem:
            problems.append(problem)
    if problems:
        return problems

    try:
        CallingWindow.parse(values["calling_hours"], values["calling_days"])
    except WindowError as exc:
        problems.append(FieldProblem(exc.field, INVALID, "Invalid calling window", str(exc)))
    try:
        ZoneInfo(values["fallback_timezone"])
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(FieldProblem("fallback_timezone", INVALID, "Unknown time zone",
                                     f"{values['fallback_timezone']!r} is not an IANA time zone "
                                     "like America/New_York"))
    if values.get("rules_file"):
        from campaigns.compliance.ruleset import RulesFileError, load_rules

        try:
            load_rules(values["rules_file"])
        except RulesFileError as exc:
            problems.append(FieldProblem("rules_file", INVALID, "Invalid rules file", str(exc)))
    bad = [o for o in values["retry_on"] if o not in RETRYABLE_BY_DEFAULT]
    if bad:
        problems.append(FieldProblem("retry_on", INVALID, "Invalid enumerated value",
                                     f"{', '.join(bad)} cannot be retried; allowed: "
                                     f"{', '.join(RETRYABLE_BY_DEFAULT)}"))

    def need(cond: bool, field: str, detail: str) -> None:
        if not cond:
            problems.append(FieldProblem(field, MISSING, "Missing required parameter", detail))

    on_human, on_machine = values["on_human"], values["on_machine"]
    need(on_human != "play" or bool(values.get("message_audio_url") or
                                    values.get("message_media_name")),
         "message_audio_url", "on_human=play needs message_audio_url or message_media_name")
    need(on_human != "speak" or bool(values.get("message_text")),
         "message_text", "on_human=speak needs message_text")
    need(on_human != "transfer" or bool(values.get("transfer_to")),
         "transfer_to", "on_human=transfer needs transfer_to")
    need(on_machine != "voicemail" or bool(values.get("voicemail_audio_url") or
                                           values.get("voicemail_media_name") or
                                           values.get("voicemail_text")),
         "voicemail_audio_url",
         "on_machine=voicemail needs voicemail_audio_url, voicemail_media_name or voicemail_text")
    need(on_human != "script" or bool(values.get("script")),
         "script", "on_human=script needs [script.start] and its steps")
    need(on_human == "script" or not values.get("script"),
         "on_human", f"the campaign has a script but on_human = {on_human!r}: set on_human = "
         "\"script\" to run it (or remove the [script] tables)")
    problems.extend(_script_problems(values))
    if values.get("message_audio_url") and values.get("message_media_name"):
        problems.append(FieldProblem("message_media_name", INVALID, "Invalid parameter",
                                     "message_audio_url and message_media_name cannot be used "
                                     "together"))
    return problems


def _script_problems(values: Mapping[str, Any]) -> list[FieldProblem]:
    """The script's problems and every template's syntax (fields are checked against the
    contact list at start, when the list is known)."""
    from campaigns import scripts, templates

    problems: list[FieldProblem] = []
    if values.get("script"):
        try:
            scripts.parse_script(values["script"],
                                 opt_out_digit=values.get("opt_out_digit"),
                                 transfer_to=values.get("transfer_to"))
        except InvalidSettings as exc:
            problems.append(FieldProblem("script", INVALID, "Invalid script", str(exc)))
    for key, target in templates.TEMPLATE_SETTINGS.items():
        value = values.get(key)
        if not isinstance(value, str):
            continue
        try:
            templates.parse(value)
        except InvalidSettings as exc:
            problems.append(FieldProblem(key, INVALID, "Invalid template", str(exc)))
            continue
        if target == "speech":  # what is sent: escaped and wrapped when templated
            length = templates.sent_length(value)
            if length > templates.SPEAK_LIMIT:
                problems.append(FieldProblem(
                    key, INVALID, "Invalid parameter",
                    f"is {length:,} characters as sent ({length - templates.SPEAK_LIMIT:,} "
                    f"over Telnyx's limit of {templates.SPEAK_LIMIT:,}"
                    + ("; with its fields empty, XML escaping and <speak> counted)"
                       if "{" in value else ")")))
        elif target == "url" and "{" in value:
            problem = templates.url_template_problem(value)
            if problem:
                problems.append(FieldProblem(key, INVALID, "Invalid template", problem))
    if values.get("opt_out_digit") and values.get("on_human") not in ("speak", "play", "script"):
        problems.append(FieldProblem("opt_out_digit", INVALID, "Invalid parameter",
                                     "needs on_human = speak, play or script"))
    return problems
