"""Typed Dial request and the results of the calls API.

`DialRequest` has one attribute per entry of `campaigns.telnyx_schema.dial.DIAL_FIELDS` (`from_` for
`from`); `to_body()` sends only what is set, so Telnyx applies its own defaults to the rest.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from campaigns.telnyx_schema.dial import (
    DIAL_FIELDS,
    dial_body_shape_problems,
    validate_dial_request,
)
from campaigns.telnyx_schema.fields import FieldProblem
from dialer.telnyx.errors import ApiError, InvalidRequest

__all__ = ["CallStatus", "DialRequest", "DialResult", "invalid_request_from_problems"]

Header = dict[str, str]


@dataclass
class DialRequest:
    """The body of `POST /v2/calls`. None means "not sent" (Telnyx's default applies)."""

    to: str | list[str]
    from_: str
    connection_id: str
    from_display_name: str | None = None
    audio_url: str | None = None
    media_name: str | None = None
    preferred_codecs: str | None = None
    timeout_secs: int | None = None
    time_limit_secs: int | None = None
    answering_machine_detection: str | None = None
    answering_machine_detection_config: dict[str, int] | None = None
    conference_config: dict[str, Any] | None = None
    custom_headers: list[Header] | None = None
    billing_group_id: str | None = None
    client_state: str | None = None
    command_id: str | None = None
    link_to: str | None = None
    bridge_intent: bool | None = None
    bridge_on_answer: bool | None = None
    park_after_unbridge: str | None = None
    media_encryption: str | None = None
    sip_auth_username: str | None = None
    sip_auth_password: str | None = field(default=None, repr=False)
    sip_headers: list[Header] | None = None
    sip_transport_protocol: str | None = None
    sound_modifications: dict[str, Any] | None = None
    stream_url: str | None = None
    stream_track: str | None = None
    stream_codec: str | None = None
    stream_bidirectional_mode: str | None = None
    stream_bidirectional_codec: str | None = None
    stream_bidirectional_target_legs: str | None = None
    stream_bidirectional_sampling_rate: int | None = None
    stream_establish_before_call_originate: bool | None = None
    send_silence_when_idle: bool | None = None
    webhook_url: str | None = None
    webhook_url_method: str | None = None
    record: str | None = None
    record_channels: str | None = None
    record_format: str | None = None
    record_max_length: int | None = None
    record_timeout_secs: int | None = None
    record_track: str | None = None
    record_trim: str | None = None
    record_custom_file_name: str | None = None
    supervise_call_control_id: str | None = None
    supervisor_role: str | None = None
    enable_dialogflow: bool | None = None
    dialogflow_config: dict[str, Any] | None = None
    transcription: bool | None = None
    transcription_config: dict[str, Any] | None = None
    sip_region: str | None = None
    retry_on_timeout: bool | None = None
    send_digits_on_answer: str | None = None
    privacy: str | None = None
    prevent_double_bridge: bool | None = None
    webhook_urls: dict[str, str] | None = None
    webhook_urls_method: str | None = None
    webhook_retries_policies: dict[str, Any] | None = None
    deepfake_detection: dict[str, Any] | None = None
    stream_auth_token: str | None = field(default=None, repr=False)
    assistant: dict[str, Any] | None = None
    conversation_relay_config: dict[str, Any] | None = None

    def to_body(self) -> dict[str, Any]:
        """The JSON body with Telnyx key names, only the fields that are set."""
        body: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is not None:
                body[_telnyx_name(f.name)] = value
        return body

    def validate(self) -> None:
        """Raise InvalidRequest (status None: checked here, not sent) unless Telnyx would accept."""
        problems = validate_dial_request(self.to_body())
        if problems:
            raise invalid_request_from_problems(problems)

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> DialRequest:
        """Build from a body with Telnyx key names. Unknown or missing required keys raise
        InvalidRequest; values are not checked (call `validate()`)."""
        problems = dial_body_shape_problems(body)
        if problems:
            raise invalid_request_from_problems(problems)
        return cls(**{_python_name(k): v for k, v in body.items()})


def _telnyx_name(attr: str) -> str:
    return "from" if attr == "from_" else attr


def _python_name(key: str) -> str:
    return "from_" if key == "from" else key


def invalid_request_from_problems(problems: list[FieldProblem]) -> InvalidRequest:
    """An InvalidRequest (status None) carrying validation problems as Telnyx-style errors."""
    errors = [ApiError(p.code, p.title, p.detail, p.pointer) for p in problems]
    summary = "; ".join(f"{p.field}: {p.detail}" for p in problems)
    return InvalidRequest(f"invalid dial request: {summary}", status=None, errors=errors)


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


@dataclass(frozen=True)
class DialResult:
    """What Telnyx answered to a dial; `sends` counts the HTTP sends it took (re-sends + 1)."""

    call_control_id: str
    call_leg_id: str | None
    call_session_id: str | None
    client_state: str | None
    raw: dict[str, Any] = field(repr=False)
    sends: int = 1

    @classmethod
    def from_data(cls, data: Mapping[str, Any], *, sends: int = 1) -> DialResult:
        return cls(
            call_control_id=str(data["call_control_id"]),
            call_leg_id=_opt_str(data.get("call_leg_id")),
            call_session_id=_opt_str(data.get("call_session_id")),
            client_state=_opt_str(data.get("client_state")),
            raw=dict(data),
            sends=sends,
        )


@dataclass(frozen=True)
class CallStatus:
    """`GET /v2/calls/{id}`: whether the call is alive; times are timezone-aware when given."""

    call_control_id: str
    is_alive: bool
    start_time: datetime | None
    end_time: datetime | None
    call_duration: int | None
    client_state: str | None
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> CallStatus:
        duration = data.get("call_duration")
        return cls(
            call_control_id=str(data["call_control_id"]),
            is_alive=bool(data.get("is_alive")),
            start_time=_parse_time(data.get("start_time")),
            end_time=_parse_time(data.get("end_time")),
            call_duration=duration if isinstance(duration, int) else None,
            client_state=_opt_str(data.get("client_state")),
            raw=dict(data),
        )


assert {_telnyx_name(f.name) for f in dataclasses.fields(DialRequest)} == set(DIAL_FIELDS), (
    "DialRequest must have one attribute per DIAL_FIELDS entry"
)
