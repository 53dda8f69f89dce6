"""Every field of the Telnyx Dial request (`POST /v2/calls`), and its validation.

The table follows `dial-api.txt` (in its order), then the extra fields of the official OpenAPI
`CallRequest` schema. One table serves the client (what may be sent), the simulator (what Telnyx
would reject, with the same error codes and pointers) and campaign settings (which of these fields
a whole campaign may hold). Pure: no I/O, no `dialer` import.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import re
from collections.abc import Iterable, Mapping
from typing import Any

from campaigns.telnyx_schema.fields import (
    BAD_CONNECTION,
    INVALID,
    MISSING,
    NOT_E164,
    OUT_OF_RANGE,
    FieldProblem,
    FieldSpec,
    Kind,
    check_value,
)

__all__ = [
    "AMD_MODES",
    "CAMPAIGN_DIAL_FIELDS",
    "DIAL_FIELDS",
    "E164_PATTERN",
    "NESTED_FIELDS",
    "PER_CALL_DIAL_FIELDS",
    "REQUIRED_DIAL_FIELDS",
    "SECRET_DIAL_FIELDS",
    "validate_campaign_dial_settings",
    "validate_dial_request",
]

E164_PATTERN = r"\+[1-9][0-9]{1,14}"  # ASCII digits: \d also matches other scripts
_E164 = re.compile(E164_PATTERN)
# A single `to` string may carry DTMF digits after a comma ("+18004247767,200"), per the OpenAPI.
_DTMF = r"[0-9A-DwW*#]{1,64}"
_E164_WITH_DIGITS = re.compile(rf"{E164_PATTERN}(?:,{_DTMF})?")
_SIP_URI = re.compile(r"sips?:\S+", re.IGNORECASE)
_HTTP_URL = r"https?://\S+"
_WS_URL = r"wss?://\S+"
_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_INT32_MAX = 2**31 - 1

AMD_MODES = ("premium", "detect", "detect_beep", "detect_words", "greeting_end", "disabled")
_STREAM_CODECS = ("PCMU", "PCMA", "G722", "OPUS", "AMR-WB", "L16")


def _f(name: str, kind: Kind, help: str, **kw: Any) -> FieldSpec:
    return FieldSpec(name=name, kind=kind, help=help, **kw)


_FIELDS: list[FieldSpec] = [
    # --- dial-api.txt, in page order ---
    _f("to", "str_or_array",
       "Destination: a +E164 number or a sip: URI, or a list of them (required)."),
    _f("from", "str", "Caller ID number in +E164 format (required).",
       pattern=E164_PATTERN, pattern_help="must be a phone number in +E164 format"),
    _f("connection_id", "str", "ID of the Call Control App used to dial (required).",
       min_length=1),
    _f("from_display_name", "str",
       "Caller ID name: up to 128 letters, digits, spaces and -_~!.+ characters.",
       max_length=128, pattern=r"[\w \-~!.+]*",
       pattern_help="may contain only letters, digits, spaces and -_~!.+ characters"),
    _f("audio_url", "str", "WAV or MP3 URL played when the call is answered (not with media_name).",
       pattern=_HTTP_URL, pattern_help="must be an http:// or https:// URL"),
    _f("media_name", "str",
       "Name of an uploaded media file played when the call is answered (not with audio_url)."),
    _f("preferred_codecs", "str", "Comma-separated codecs in order of preference, e.g. G722,PCMU."),
    _f("timeout_secs", "int", "Seconds to wait for an answer before hanging up (5-600).",
       minimum=5, maximum=600, default=30),
    _f("time_limit_secs", "int", "Maximum call length in seconds (30-14400).",
       minimum=30, maximum=14400, default=14400),
    _f("answering_machine_detection", "str",
       "Answering machine detection mode (premium or a standard mode, or disabled).",
       enum=AMD_MODES, default="disabled"),
    _f("answering_machine_detection_config", "object",
       "AMD tuning in milliseconds/counts (premium uses only total_analysis_time_millis "
       "and greeting_duration_millis)."),
    _f("conference_config", "object", "Join the dialed party into a conference."),
    _f("custom_headers", "array", "Custom SIP headers for the INVITE: a list of {name, value}."),
    _f("billing_group_id", "str", "Billing Group ID (UUID) charged for the call.",
       pattern=_UUID, pattern_help="must be a UUID"),
    _f("client_state", "str", "Base64 state echoed in every webhook of the call."),
    _f("command_id", "str", "Idempotency key: Telnyx ignores repeated dials with it for 60 s."),
    _f("link_to", "str", "Another call's control id whose call session this call shares."),
    _f("bridge_intent", "bool", "Intend to bridge with the link_to call (needs link_to).",
       default=False),
    _f("bridge_on_answer", "bool", "Bridge to the link_to call on answer (needs link_to).",
       default=False),
    _f("park_after_unbridge", "str", "'self' parks this leg after unbridge (needs link_to)."),
    _f("media_encryption", "str", "Media encryption: disabled, SRTP or DTLS.",
       enum=("disabled", "SRTP", "DTLS"), default="disabled"),
    _f("sip_auth_username", "str", "SIP authentication username for SIP challenges."),
    _f("sip_auth_password", "str", "SIP authentication password for SIP challenges.",
       secret=True),
    _f("sip_headers", "array",
       "SIP headers for the INVITE: a list of {name, value}; only User-to-User is supported."),
    _f("sip_transport_protocol", "str", "SIP transport: UDP, TCP or TLS.",
       enum=("UDP", "TCP", "TLS"), default="UDP"),
    _f("sound_modifications", "object", "Sound effects: pitch, semitone, octaves, track."),
    _f("stream_url", "str", "WebSocket URL that receives the call's media stream.",
       pattern=_WS_URL, pattern_help="must be a ws:// or wss:// URL"),
    _f("stream_track", "str", "Which track is streamed.",
       enum=("inbound_track", "outbound_track", "both_tracks"), default="inbound_track"),
    _f("stream_codec", "str", "Codec of the streamed audio ('default' keeps the call's codec).",
       enum=(*_STREAM_CODECS, "default"), default="default"),
    _f("stream_bidirectional_mode", "str", "Bidirectional streaming method: mp3 or rtp.",
       enum=("mp3", "rtp"), default="mp3"),
    _f("stream_bidirectional_codec", "str", "Codec of bidirectional RTP payloads (mode rtp).",
       enum=_STREAM_CODECS, default="PCMU"),
    _f("stream_bidirectional_target_legs", "str", "Legs that hear the bidirectional stream.",
       enum=("both", "self", "opposite"), default="opposite"),
    _f("stream_bidirectional_sampling_rate", "int", "Bidirectional stream sampling rate in Hz.",
       enum=(8000, 16000, 22050, 24000, 48000), default=8000),
    _f("stream_establish_before_call_originate", "bool",
       "Open the stream WebSocket before dialing.", default=False),
    _f("send_silence_when_idle", "bool", "Send silence RTP packets when nothing else is sent.",
       default=False),
    _f("webhook_url", "str", "URL that receives this call's webhooks instead of the app's.",
       pattern=_HTTP_URL, pattern_help="must be an http:// or https:// URL"),
    _f("webhook_url_method", "str", "HTTP method used for webhook_url.",
       enum=("POST", "GET"), default="POST"),
    _f("record", "str", "Record automatically: record-from-answer.",
       enum=("record-from-answer",)),
    _f("record_channels", "str", "Recording channels: single or dual.",
       enum=("single", "dual"), default="dual"),
    _f("record_format", "str", "Recording format: wav or mp3.", enum=("wav", "mp3"), default="mp3"),
    _f("record_max_length", "int", "Maximum recording seconds (0 = unlimited, max 43200).",
       minimum=0, maximum=43200, default=0),
    _f("record_timeout_secs", "int", "Stop recording after this many silent seconds (0 = never).",
       minimum=0, maximum=_INT32_MAX, default=0),
    _f("record_track", "str", "Recorded track: both, inbound or outbound.",
       enum=("both", "inbound", "outbound"), default="both"),
    _f("record_trim", "str", "trim-silence removes silence at both ends of the recording.",
       enum=("trim-silence",)),
    _f("record_custom_file_name", "str", "Recording file name (1-40 chars) instead of call_leg_id.",
       min_length=1, max_length=40),
    _f("supervise_call_control_id", "str", "Call leg that this call supervises."),
    _f("supervisor_role", "str", "Supervisor role: barge, whisper or monitor.",
       enum=("barge", "whisper", "monitor"), default="barge"),
    _f("enable_dialogflow", "bool", "Enable Dialogflow on the call.", default=False),
    _f("dialogflow_config", "object", "Dialogflow options: analyze_sentiment, "
       "partial_automated_agent_reply."),
    _f("transcription", "bool", "Start transcription when the call is answered.", default=False),
    _f("transcription_config", "object", "Transcription options (engine, tracks, ...)."),
    _f("sip_region", "str", "SIP region of the call.",
       enum=("US", "Europe", "Canada", "Australia", "Middle East"), default="US"),
    # --- only in the OpenAPI CallRequest (REFERENCE.md, "Dial fields beyond the documentation") ---
    _f("retry_on_timeout", "bool",
       "Keep trying other routes after timeout_secs; false reports no_answer instead of timeout.",
       default=True),
    _f("send_digits_on_answer", "str", "DTMF sent after answer (0-9 A-D w W * #, up to 64).",
       pattern=_DTMF, pattern_help="may contain only 0-9, A-D, w, W, * and #, up to 64 characters"),
    _f("privacy", "str", "'id' hides the caller ID from the called party.", enum=("id", "none")),
    _f("prevent_double_bridge", "bool", "Hang up instead of bridging to an already bridged call.",
       default=False),
    _f("webhook_urls", "object", "Map of event type to the URL that receives that event."),
    _f("webhook_urls_method", "str", "HTTP method used for webhook_urls.",
       enum=("POST", "GET"), default="POST"),
    _f("webhook_retries_policies", "object",
       "Map of event type to {retries_ms: [...]}: at most 5 retries, 60000 ms in total."),
    _f("deepfake_detection", "object",
       "Detect AI-generated voices: {enabled, rtp_timeout, timeout}."),
    _f("stream_auth_token", "str", "Token sent when opening the stream WebSocket (max 4000 chars).",
       max_length=4000, secret=True),
    _f("assistant", "object", "AI assistant that handles the call: {id, ...}."),
    _f("conversation_relay_config", "object", "Conversation Relay session started on answer: "
       "{url, ...}."),
]

DIAL_FIELDS: dict[str, FieldSpec] = {spec.name: spec for spec in _FIELDS}
_ORDER: dict[str, int] = {name: i for i, name in enumerate(DIAL_FIELDS)}

REQUIRED_DIAL_FIELDS: tuple[str, ...] = ("to", "from", "connection_id")

# Fields that only make sense for one call. `from` and `connection_id` are campaign settings, but
# the campaign holds them in their own columns, not among its dial settings.
PER_CALL_DIAL_FIELDS: frozenset[str] = frozenset({
    "to", "from", "connection_id", "client_state", "command_id", "link_to", "bridge_intent",
    "bridge_on_answer", "park_after_unbridge", "supervise_call_control_id", "supervisor_role",
    "prevent_double_bridge",
})
CAMPAIGN_DIAL_FIELDS: frozenset[str] = frozenset(DIAL_FIELDS) - PER_CALL_DIAL_FIELDS
SECRET_DIAL_FIELDS: frozenset[str] = frozenset(n for n, s in DIAL_FIELDS.items() if s.secret)


# --- nested objects -------------------------------------------------------------------------

def _nested(parent: str, specs: Iterable[FieldSpec]) -> dict[str, FieldSpec]:
    """Key the specs of a nested object by their own key; their names carry the parent path."""
    return {s.name.removeprefix(parent + "."): s for s in specs}


_AMD = "answering_machine_detection_config"
_AMD_DEFAULTS = {
    "total_analysis_time_millis": 3500,
    "after_greeting_silence_millis": 800,
    "between_words_silence_millis": 50,
    "greeting_duration_millis": 3500,
    "initial_silence_millis": 3500,
    "maximum_number_of_words": 5,
    "maximum_word_length_millis": 3500,
    "silence_threshold": 256,
    "greeting_total_analysis_time_millis": 5000,
    "greeting_silence_duration_millis": 1500,
}

_CONF = "conference_config"
_SOUND = "sound_modifications"
_DEEPFAKE = "deepfake_detection"
_TRANSCRIPTION = "transcription_config"

NESTED_FIELDS: dict[str, dict[str, FieldSpec]] = {
    _AMD: _nested(_AMD, (
        _f(f"{_AMD}.{key}", "int", f"AMD threshold (int32, default {default}).",
           minimum=0, maximum=_INT32_MAX, default=default)
        for key, default in _AMD_DEFAULTS.items()
    )),
    _CONF: _nested(_CONF, [
        _f(f"{_CONF}.id", "str", "Conference ID (UUID) to join.", pattern=_UUID,
           pattern_help="must be a UUID"),
        _f(f"{_CONF}.conference_name", "str", "Conference name to join."),
        _f(f"{_CONF}.beep_enabled", "str", "When a beep is played.",
           enum=("always", "never", "on_enter", "on_exit")),
        _f(f"{_CONF}.early_media", "bool", "Join on early media instead of on answer.",
           default=True),
        _f(f"{_CONF}.end_conference_on_exit", "bool", "End the conference when this party leaves."),
        _f(f"{_CONF}.soft_end_conference_on_exit", "bool",
           "End the conference (without hanging up others) when this party leaves."),
        _f(f"{_CONF}.hold", "bool", "Put the party on hold after joining."),
        _f(f"{_CONF}.hold_audio_url", "str", "Audio played while on hold."),
        _f(f"{_CONF}.hold_media_name", "str", "Uploaded media played while on hold."),
        _f(f"{_CONF}.mute", "bool", "Mute the party after joining."),
        _f(f"{_CONF}.start_conference_on_create", "bool", "Start the conference on creation."),
        _f(f"{_CONF}.start_conference_on_enter", "bool",
           "Start the conference when this party joins."),
        _f(f"{_CONF}.supervisor_role", "str", "Join as supervisor.",
           enum=("barge", "monitor", "none", "whisper")),
        _f(f"{_CONF}.whisper_call_control_ids", "array",
           "Call control ids the supervisor whispers to."),
    ]),
    "dialogflow_config": _nested("dialogflow_config", [
        _f("dialogflow_config.analyze_sentiment", "bool", "Enable sentiment analysis.",
           default=False),
        _f("dialogflow_config.partial_automated_agent_reply", "bool",
           "Enable partial automated agent reply.", default=False),
    ]),
    _SOUND: _nested(_SOUND, [
        _f(f"{_SOUND}.pitch", "float", "Pitch factor, > 0 (default 1)."),
        _f(f"{_SOUND}.semitone", "float", "Pitch shift in semitones, -14..14 (default 0).",
           minimum=-14, maximum=14),
        _f(f"{_SOUND}.octaves", "float", "Pitch shift in octaves, -1..1 (default 0).",
           minimum=-1, maximum=1),
        _f(f"{_SOUND}.track", "str", "Track the modifications apply to.",
           enum=("inbound", "outbound", "both"), default="outbound"),
    ]),
    _DEEPFAKE: _nested(_DEEPFAKE, [
        _f(f"{_DEEPFAKE}.enabled", "bool", "Enable deepfake detection (required).", default=False),
        _f(f"{_DEEPFAKE}.rtp_timeout", "int", "Seconds to wait for audio, 5-120.",
           minimum=5, maximum=120, default=30),
        _f(f"{_DEEPFAKE}.timeout", "int", "Seconds to wait for a result, 5-60.",
           minimum=5, maximum=60, default=15),
    ]),
    _TRANSCRIPTION: _nested(_TRANSCRIPTION, [
        _f(f"{_TRANSCRIPTION}.client_state", "str", "Base64 state for transcription webhooks."),
        _f(f"{_TRANSCRIPTION}.command_id", "str", "Idempotency key of the transcription command."),
        _f(f"{_TRANSCRIPTION}.transcription_engine", "str", "Speech recognition engine.",
           enum=("Google", "Telnyx", "Deepgram", "Azure", "xAI", "AssemblyAI", "Speechmatics",
                 "Soniox", "Parakeet", "A", "B"), default="Google"),
        _f(f"{_TRANSCRIPTION}.transcription_engine_config", "object", "Engine-specific options."),
        _f(f"{_TRANSCRIPTION}.transcription_tracks", "str", "Transcribed legs.",
           enum=("inbound", "outbound", "both"), default="inbound"),
    ]),
}

# Nested objects whose keys we do not enumerate (large, fast-moving schemas): only their required
# keys are checked.
_OPEN_OBJECT_REQUIRED: dict[str, tuple[tuple[str, Kind], ...]] = {
    "assistant": (("id", "str"),),
    "conversation_relay_config": (("url", "str"),),
}


# --- problems -------------------------------------------------------------------------------

def _problem(field: str, code: str, title: str, detail: str) -> FieldProblem:
    return FieldProblem(field=field, code=code, title=title, detail=detail)


def _unknown(field: str, known: Iterable[str]) -> FieldProblem:
    leaf = field.rsplit(".", 1)[-1]
    close = difflib.get_close_matches(leaf.rstrip("_"), list(known), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return _problem(field, INVALID, "Unknown parameter", f"is not a known parameter{hint}")


def _check_object(
    parent: str,
    value: Mapping[str, Any],
    specs: Mapping[str, FieldSpec],
    required: Iterable[str] = (),
) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    for key, item in value.items():
        spec = specs.get(key)
        if spec is None:
            problems.append(_unknown(f"{parent}.{key}", specs))
            continue
        problem = check_value(spec, item)
        if problem is not None:
            problems.append(problem)
    for key in required:
        if key not in value:
            problems.append(_problem(f"{parent}.{key}", MISSING, "Missing required parameter",
                                     "is required"))
    return problems


def _check_headers(
    field: str, value: list[Any], names: tuple[str, ...] | None
) -> list[FieldProblem]:
    """A list of {name, value} objects (custom_headers, sip_headers)."""
    problems: list[FieldProblem] = []
    for i, header in enumerate(value):
        at = f"{field}.{i}"
        if not isinstance(header, Mapping):
            problems.append(_problem(at, INVALID, "Invalid parameter type",
                                     f"must be an object with name and value, got {header!r}"))
            continue
        specs = {
            "name": FieldSpec(f"{at}.name", "str", enum=names, min_length=1),
            "value": FieldSpec(f"{at}.value", "str"),
        }
        problems += _check_object(at, header, specs, required=("name", "value"))
    return problems


def _check_base64(field: str, value: str) -> FieldProblem | None:
    try:
        base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        return _problem(field, INVALID, "Invalid parameter",
                        "must be a valid Base-64 encoded string")
    return None


def _check_to(value: Any) -> list[FieldProblem]:
    if isinstance(value, str):
        if _E164_WITH_DIGITS.fullmatch(value) or _SIP_URI.fullmatch(value):
            return []
        return [_problem("to", NOT_E164, "Invalid phone number",
                         f"{value!r} must be a +E164 phone number or a sip: URI")]
    if not value:
        return [_problem("to", NOT_E164, "Invalid phone number",
                         "must list at least one +E164 number or sip: URI")]
    return [
        _problem(f"to.{i}", NOT_E164, "Invalid phone number",
                 f"{item!r} must be a +E164 phone number or a sip: URI")
        for i, item in enumerate(value)
        if not (_E164.fullmatch(item) or _SIP_URI.fullmatch(item))
    ]


def _check_field(name: str, value: Any) -> list[FieldProblem]:
    """Problems of one top-level field (type, enum, range, pattern, nested content)."""
    spec = DIAL_FIELDS[name]
    if value is None:
        if name in REQUIRED_DIAL_FIELDS:
            return [_problem(name, MISSING, "Missing required parameter", "is required")]
        return [_problem(name, INVALID, "Invalid parameter type",
                         f"must not be null; leave {name} out instead")]
    if name == "connection_id" and value == "":
        return [_problem(name, BAD_CONNECTION, "Invalid value for connection_id",
                         "must be the ID of a Call Control App")]
    problem = check_value(spec, value)
    if problem is not None:
        if name == "from" and problem.code == INVALID and isinstance(value, str):
            problem = _problem(name, NOT_E164, "Invalid phone number",
                               f"{value!r} must be a phone number in +E164 format")
        return [problem]
    if name == "to":
        return _check_to(value)
    if name in ("client_state",):
        p = _check_base64(name, value)
        return [p] if p else []
    if name == "custom_headers":
        return _check_headers(name, value, None)
    if name == "sip_headers":
        return _check_headers(name, value, ("User-to-User",))
    if name in NESTED_FIELDS:
        return _check_nested(name, value)
    if name in _OPEN_OBJECT_REQUIRED:
        problems: list[FieldProblem] = []
        for key, kind in _OPEN_OBJECT_REQUIRED[name]:
            if key not in value:
                problems.append(_problem(f"{name}.{key}", MISSING, "Missing required parameter",
                                         "is required"))
            else:
                p = check_value(FieldSpec(f"{name}.{key}", kind, min_length=1), value[key])
                if p:
                    problems.append(p)
        return problems
    if name == "webhook_urls":
        # Event types contain dots, which a FieldProblem pointer cannot carry: name them in detail.
        return [
            _problem(name, INVALID, "Invalid parameter",
                     f"the URL for {event!r} must be an http:// or https:// URL")
            for event, url in value.items()
            if not (isinstance(url, str) and re.fullmatch(_HTTP_URL, url))
        ]
    if name == "webhook_retries_policies":
        return _check_retries_policies(name, value)
    return []


def _check_nested(name: str, value: Mapping[str, Any]) -> list[FieldProblem]:
    required = ("enabled",) if name == _DEEPFAKE else ()
    problems = _check_object(name, value, NESTED_FIELDS[name], required=required)
    if problems:
        return problems
    if name == _SOUND and "pitch" in value and value["pitch"] <= 0:
        problems.append(_problem(f"{name}.pitch", OUT_OF_RANGE, "Value outside of range",
                                 f"{value['pitch']!r} must be greater than 0"))
    if name == _CONF:
        ids = value.get("whisper_call_control_ids", [])
        if not all(isinstance(i, str) for i in ids):
            problems.append(_problem(f"{name}.whisper_call_control_ids", INVALID,
                                     "Invalid parameter type", "must be a list of strings"))
        if "hold_audio_url" in value and "hold_media_name" in value:
            problems.append(_problem(f"{name}.hold_media_name", INVALID, "Invalid parameter",
                                     "hold_media_name and hold_audio_url cannot be used together"))
    if name == _TRANSCRIPTION and "client_state" in value:
        p = _check_base64(f"{name}.client_state", value["client_state"])
        if p:
            problems.append(p)
    return problems


def _check_retries_policies(name: str, value: Mapping[str, Any]) -> list[FieldProblem]:
    """Event types contain dots, which a FieldProblem pointer cannot carry: name them in detail."""
    problems: list[FieldProblem] = []
    for event, policy in value.items():
        if not isinstance(policy, Mapping) or set(policy) - {"retries_ms"}:
            problems.append(_problem(name, INVALID, "Invalid parameter",
                                     f"the policy for {event!r} must be like "
                                     "{retries_ms = [1000, 2000]}"))
            continue
        delays = policy.get("retries_ms", [])
        if not isinstance(delays, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in delays
        ):
            problems.append(_problem(name, INVALID, "Invalid parameter type",
                                     f"retries_ms of {event!r} must be a list of non-negative "
                                     "integers (milliseconds)"))
        elif len(delays) > 5 or sum(delays) > 60000:
            problems.append(_problem(name, OUT_OF_RANGE, "Value outside of range",
                                     f"retries_ms of {event!r} allows at most 5 retries and "
                                     "60000 ms in total"))
    return problems


def _cross_field(values: Mapping[str, Any]) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    if "media_name" in values and "audio_url" in values:
        problems.append(_problem("media_name", INVALID, "Invalid parameter",
                                 "media_name and audio_url cannot be used together"))
    if "link_to" not in values:
        for name in ("bridge_intent", "bridge_on_answer", "park_after_unbridge"):
            value = values.get(name)
            if value is not None and value is not False:
                problems.append(_problem("link_to", MISSING, "Missing required parameter",
                                         f"is required when {name} is set"))
    return problems


def _sort_key(problem: FieldProblem) -> int:
    return _ORDER.get(problem.field.split(".", 1)[0], len(_ORDER))


def _validate(values: Mapping[str, Any], allowed: frozenset[str] | None) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    checked: dict[str, Any] = {}
    for key, value in values.items():
        if key not in DIAL_FIELDS:
            problems.append(_unknown(key, DIAL_FIELDS))
        elif allowed is not None and key not in allowed:
            problems.append(_problem(key, INVALID, "Not a campaign setting", _per_call_detail(key)))
        else:
            checked[key] = value
            problems += _check_field(key, value)
    problems += _cross_field(checked)
    return sorted(problems, key=_sort_key)  # stable: unknown keys keep body order, last


def _per_call_detail(key: str) -> str:
    if key == "from":
        return "cannot be set per campaign here: it is the campaign's --from setting"
    if key == "connection_id":
        return "cannot be set per campaign here: it is the campaign's --connection-id setting"
    return "cannot be set per campaign: it is chosen for each call"


def _missing(body: Mapping[str, Any]) -> list[FieldProblem]:
    return [_problem(name, MISSING, "Missing required parameter", "is required")
            for name in REQUIRED_DIAL_FIELDS if name not in body]


def validate_dial_request(body: Mapping[str, Any]) -> list[FieldProblem]:
    """All problems of a Dial request body (Telnyx key names), in field order; [] when valid."""
    return sorted(_missing(body) + _validate(body, None), key=_sort_key)


def dial_body_shape_problems(body: Mapping[str, Any]) -> list[FieldProblem]:
    """Only the shape of a Dial request body: required keys missing and unknown keys (values are
    not checked; see `validate_dial_request`)."""
    unknown = [_unknown(key, DIAL_FIELDS) for key in body if key not in DIAL_FIELDS]
    return sorted(_missing(body) + unknown, key=_sort_key)


def validate_campaign_dial_settings(values: Mapping[str, Any]) -> list[FieldProblem]:
    """Problems of the dial settings a campaign holds: only CAMPAIGN_DIAL_FIELDS, none required."""
    return _validate(values, CAMPAIGN_DIAL_FIELDS)
