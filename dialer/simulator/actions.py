"""Validation of call-control command bodies (hangup, playback_start, playback_stop, speak,
transfer, client_state_update), with Telnyx's error codes.

Only the fields a dialer uses are checked in depth; other keys are accepted and ignored, so a
newer SDK that sends a new optional field keeps working. A JSON `null` at the top level of a body
means "not given" (`normalize_action_body`): an optional field takes its default, a required one is
missing (422 10004).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from typing import Any

from campaigns.telnyx_schema.dial import AMD_MODES, E164_PATTERN
from campaigns.telnyx_schema.fields import (
    BAD_ENUM,
    INVALID,
    MISSING,
    NOT_E164,
    FieldProblem,
    FieldSpec,
    check_value,
)
from campaigns.telnyx_schema.speech import SPEAK_LANGUAGES, VOICE_PROVIDERS

ACTIONS = ("hangup", "playback_start", "playback_stop", "speak", "transfer", "client_state_update",
           "gather_using_speak", "gather_using_audio")
#: Commands that need an answered call (422 90034 before the answer).
NEEDS_ANSWER = frozenset({"playback_start", "playback_stop", "speak", "transfer",
                          "gather_using_speak", "gather_using_audio"})

_HTTP_URL = r"https?://\S+"


#: The OpenAPI's integers are `format: int32`.
_INT32_MAX = 2**31 - 1

#: `voice` as the OpenAPI describes it (`campaigns.telnyx_schema.speech`): what Telnyx would
#: take, any voice id after the provider.
_VOICE = re.compile(rf"male|female|(?:{'|'.join(VOICE_PROVIDERS)})(?:\.[^\s.]\S*)?")

#: `voice_settings` (a oneOf discriminated by `type`): each provider's documented properties.
_VOICE_SETTINGS: dict[str, tuple[FieldSpec, ...]] = {
    "aws": (),
    "azure": (FieldSpec("api_key_ref", "str"), FieldSpec("deployment_id", "str"),
              FieldSpec("effect", "str", enum=("eq_car", "eq_telecomhp8k")),
              FieldSpec("gender", "str", enum=("Male", "Female")), FieldSpec("region", "str")),
    "elevenlabs": (FieldSpec("api_key_ref", "str"),),
    "inworld": (FieldSpec("delivery_mode", "str", enum=("STABLE", "BALANCED", "CREATIVE")),),
    "minimax": (FieldSpec("language_boost", "str", enum=(
        "auto", "Chinese", "Chinese,Yue", "English", "Arabic", "Russian", "Spanish", "French",
        "Portuguese", "German", "Turkish", "Dutch", "Ukrainian", "Vietnamese", "Indonesian",
        "Japanese", "Italian", "Korean", "Thai", "Polish", "Romanian", "Greek", "Czech",
        "Finnish", "Hindi", "Bulgarian", "Danish", "Hebrew", "Malay", "Persian", "Slovak",
        "Swedish", "Croatian", "Filipino", "Hungarian", "Norwegian", "Slovenian", "Catalan",
        "Nynorsk", "Tamil", "Afrikaans")),  # or null (no boost)
                FieldSpec("pitch", "int"), FieldSpec("speed", "float"), FieldSpec("vol", "float")),
    "resemble": (FieldSpec("format", "str", enum=("wav", "mp3")),
                 FieldSpec("precision", "str", enum=("PCM_16", "PCM_24", "PCM_32", "MULAW")),
                 FieldSpec("sample_rate", "str", enum=("8000", "16000", "22050", "32000",
                                                       "44100", "48000"))),
    "rime": (FieldSpec("voice_speed", "float"),),
    "telnyx": (FieldSpec("voice_speed", "float", minimum=0.1, maximum=2.0),),
    "xai": (FieldSpec("language", "str"),),
}


def _specs(*specs: FieldSpec) -> dict[str, FieldSpec]:
    return {s.name: s for s in specs}


_COMMON = (
    FieldSpec("client_state", "str"),
    FieldSpec("command_id", "str"),
)

_SPECS: dict[str, dict[str, FieldSpec]] = {
    "hangup": _specs(*_COMMON, FieldSpec("custom_headers", "array"), FieldSpec("reason", "str")),
    "playback_start": _specs(
        *_COMMON,
        FieldSpec("audio_url", "str", pattern=_HTTP_URL,
                  pattern_help="must be an http:// or https:// URL"),
        FieldSpec("media_name", "str", min_length=1),
        FieldSpec("playback_content", "str", min_length=1),
        FieldSpec("audio_type", "str", enum=("mp3", "wav")),
        FieldSpec("cache_audio", "bool"),
        FieldSpec("overlay", "bool"),
        FieldSpec("stop", "str"),
        FieldSpec("target_legs", "str"),
    ),
    "playback_stop": _specs(*_COMMON, FieldSpec("overlay", "bool"), FieldSpec("stop", "str")),
    "speak": _specs(
        *_COMMON,
        FieldSpec("payload", "str", min_length=1),
        FieldSpec("voice", "str", min_length=1),
        FieldSpec("payload_type", "str", enum=("text", "ssml")),
        FieldSpec("service_level", "str", enum=("basic", "premium")),
        FieldSpec("language", "str", enum=SPEAK_LANGUAGES),
        FieldSpec("stop", "str"),
        FieldSpec("target_legs", "str", enum=("self", "opposite", "both")),
        FieldSpec("voice_settings", "object"),
    ),
    "transfer": _specs(
        *_COMMON,
        FieldSpec("to", "str"),
        FieldSpec("from", "str", pattern=E164_PATTERN,
                  pattern_help="must be a phone number in +E164 format"),
        FieldSpec("from_display_name", "str", max_length=128),
        FieldSpec("timeout_secs", "int", minimum=5, maximum=600),
        FieldSpec("time_limit_secs", "int", minimum=30, maximum=14400),
        FieldSpec("answering_machine_detection", "str", enum=AMD_MODES),
        FieldSpec("answering_machine_detection_config", "object"),
        FieldSpec("audio_url", "str", pattern=_HTTP_URL,
                  pattern_help="must be an http:// or https:// URL"),
        FieldSpec("media_name", "str"),
        FieldSpec("early_media", "bool"),
        FieldSpec("target_leg_client_state", "str"),
        FieldSpec("webhook_url", "str", pattern=_HTTP_URL,
                  pattern_help="must be an http:// or https:// URL"),
        FieldSpec("webhook_url_method", "str", enum=("POST", "GET")),
    ),
    "client_state_update": _specs(FieldSpec("client_state", "str")),
}

# Ranges: minimum_digits >= 1 and maximum_digits <= 128 are documented (so is min <= max, which
# bounds each by the other's limit); the other integers are int32 (their documented format),
# and at least 1: the simulator's choice, as no try or wait can be zero or negative.
_GATHER = (
    FieldSpec("valid_digits", "str", pattern=r"[0-9*#]+",
              pattern_help="must be keypad digits: 0-9, * and #"),
    FieldSpec("minimum_digits", "int", minimum=1, maximum=128),
    FieldSpec("maximum_digits", "int", minimum=1, maximum=128),
    FieldSpec("maximum_tries", "int", minimum=1, maximum=_INT32_MAX),
    FieldSpec("timeout_millis", "int", minimum=1, maximum=_INT32_MAX),
    FieldSpec("inter_digit_timeout_millis", "int", minimum=1, maximum=_INT32_MAX),
    FieldSpec("terminating_digit", "str", pattern=r"[0-9*#]",
              pattern_help="must be one keypad digit: 0-9, * or #"),
)
_SPECS["gather_using_speak"] = _specs(
    *_COMMON, *_GATHER,
    FieldSpec("payload", "str", min_length=1, max_length=3000),
    FieldSpec("invalid_payload", "str", min_length=1, max_length=3000),
    FieldSpec("voice", "str", min_length=1),
    FieldSpec("payload_type", "str", enum=("text", "ssml")),
    FieldSpec("service_level", "str", enum=("basic", "premium")),
    FieldSpec("language", "str", enum=SPEAK_LANGUAGES),
    FieldSpec("voice_settings", "object"),
)
_SPECS["gather_using_audio"] = _specs(
    *_COMMON, *_GATHER,
    FieldSpec("audio_url", "str", pattern=_HTTP_URL,
              pattern_help="must be an http:// or https:// URL"),
    FieldSpec("media_name", "str", min_length=1),
    FieldSpec("invalid_audio_url", "str", pattern=_HTTP_URL,
              pattern_help="must be an http:// or https:// URL"),
    FieldSpec("invalid_media_name", "str", min_length=1),
)

_REQUIRED: dict[str, tuple[str, ...]] = {
    "gather_using_speak": ("payload", "voice"),
    "speak": ("payload", "voice"),
    "transfer": ("to",),
    "client_state_update": ("client_state",),
}

_BASE64_FIELDS = ("client_state", "target_leg_client_state")
_E164 = re.compile(E164_PATTERN)
_SIP_URI = re.compile(r"sips?:\S+", re.IGNORECASE)


def _problem(field: str, code: str, title: str, detail: str) -> FieldProblem:
    return FieldProblem(field=field, code=code, title=title, detail=detail)


def _valid_base64(value: str) -> bool:
    try:
        base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        return False
    return True


def _check_loop(value: Any) -> FieldProblem | None:
    """Loopcount: a positive integer (or its digits as a string), or "infinity"."""
    if value == "infinity":
        return None
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 100:
        return None
    return _problem("loop", INVALID, "Invalid parameter",
                    f"must be a whole number of times (1-100) or \"infinity\", got {value!r}")


def normalize_action_body(body: Mapping[str, Any]) -> dict[str, Any]:
    """The body as it is validated and carried out: a top-level JSON `null` is a field not given
    (an optional one takes its default; a required one is missing)."""
    return {k: v for k, v in body.items() if v is not None}


def _voice_problems(body: Mapping[str, Any]) -> list[FieldProblem]:
    problems = []
    voice = body.get("voice")
    if isinstance(voice, str) and voice and not _VOICE.fullmatch(voice):
        problems.append(_problem(
            "voice", BAD_ENUM, "Invalid enumerated value",
            f"{voice!r} is not a voice: use male or female, or <Provider>.<Model>.<VoiceId> "
            f"with a provider of {', '.join(VOICE_PROVIDERS)}"))
    settings = body.get("voice_settings")
    if isinstance(settings, Mapping):
        kind = settings.get("type")
        if kind is None:
            problems.append(_problem("voice_settings.type", MISSING, "Missing required parameter",
                                     "voice_settings needs a type"))
        elif kind not in _VOICE_SETTINGS:
            problems.append(_problem(
                "voice_settings.type", BAD_ENUM, "Invalid enumerated value",
                f"{kind!r} is not one of the allowed values: {', '.join(_VOICE_SETTINGS)}"))
        else:
            for spec in _VOICE_SETTINGS[kind]:
                value = settings.get(spec.name)
                if value is None:  # absent, or (minimax language_boost) null: no boost
                    continue
                p = check_value(spec, value)
                if p is not None:
                    problems.append(_problem(f"voice_settings.{spec.name}", p.code, p.title,
                                             p.detail))
    return problems


def validate_action(action: str, body: Mapping[str, Any]) -> list[FieldProblem]:
    """All problems of one command body (normalized by `normalize_action_body`); [] when it can
    be carried out."""
    body = normalize_action_body(body)
    specs = _SPECS[action]
    problems: list[FieldProblem] = []
    for name in _REQUIRED.get(action, ()):
        if body.get(name) is None:
            problems.append(_problem(name, MISSING, "Missing required parameter", "is required"))
    for name, value in body.items():
        if name == "loop" and action in ("playback_start", "speak"):
            p = _check_loop(value)
        elif name in specs and value is not None:
            p = check_value(specs[name], value)
            if p is None and name in _BASE64_FIELDS and not _valid_base64(value):
                p = _problem(name, INVALID, "Invalid parameter",
                             "must be a valid Base-64 encoded string")
            if p is not None and name == "from" and p.code == INVALID:
                p = _problem(name, NOT_E164, "Invalid phone number",
                             f"{value!r} must be a phone number in +E164 format")
        else:
            p = None
        if p is not None:
            problems.append(p)
    if action == "playback_start":
        sources = [k for k in ("audio_url", "media_name", "playback_content") if k in body]
        if not sources:
            problems.append(_problem("audio_url", MISSING, "Missing required parameter",
                                     "audio_url, media_name or playback_content is required"))
        elif len(sources) > 1:
            problems.append(_problem(sources[1], INVALID, "Invalid parameter",
                                     f"{' and '.join(sources)} cannot be used together"))
    if action in ("speak", "gather_using_speak"):
        problems.extend(_voice_problems(body))
    if action.startswith("gather_"):
        problems.extend(_gather_problems(action, body, problems))
    if action == "transfer" and isinstance(body.get("to"), str):
        to = body["to"]
        if not (_E164.fullmatch(to) or _SIP_URI.fullmatch(to)):
            problems.append(_problem("to", NOT_E164, "Invalid phone number",
                                     f"{to!r} must be a +E164 phone number or a sip: URI"))
    return problems


def _gather_problems(action: str, body: Mapping[str, Any],
                     found: list[FieldProblem]) -> list[FieldProblem]:
    """Cross-field rules, checked only on fields that are valid alone (`found` lists the
    problems already found): one problem per mistake, pointing at a field that was sent."""
    problems = []
    bad = {p.field for p in found}
    if not bad & {"minimum_digits", "maximum_digits"}:
        lo, hi = body.get("minimum_digits", 1), body.get("maximum_digits", 128)
        if lo > hi:
            name = "maximum_digits" if "maximum_digits" in body else "minimum_digits"
            problems.append(_problem(name, INVALID, "Invalid parameter",
                                     f"maximum_digits ({hi}) must not be lower than "
                                     f"minimum_digits ({lo})"))
    if action == "gather_using_audio":
        for a, b in (("audio_url", "media_name"), ("invalid_audio_url", "invalid_media_name")):
            if a in body and b in body:
                problems.append(_problem(b, INVALID, "Invalid parameter",
                                         f"{a} and {b} cannot be used together"))
        if "audio_url" not in body and "media_name" not in body:
            problems.append(_problem("audio_url", MISSING, "Missing required parameter",
                                     "audio_url or media_name is required"))
    return problems
