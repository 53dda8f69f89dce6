"""DialRequest / DialResult / CallStatus and the error mapping, without the network."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from campaigns.telnyx_schema.dial import DIAL_FIELDS
from dialer.errors import DialerError
from dialer.telnyx.dial import CallStatus, DialRequest, DialResult
from dialer.telnyx.errors import (
    AuthenticationError,
    CallEnded,
    CallNotFound,
    InvalidRequest,
    RateLimited,
    ServerError,
    TelnyxError,
    error_from_response,
    parse_errors,
)
from tests.telnyx.test_dial_fields import FULL, MINIMAL


def test_one_attribute_per_dial_field() -> None:
    names = {"from" if f.name == "from_" else f.name for f in dataclasses.fields(DialRequest)}
    assert names == set(DIAL_FIELDS)
    required = {f.name for f in dataclasses.fields(DialRequest)
                if f.default is dataclasses.MISSING}
    assert required == {"to", "from_", "connection_id"}


def test_to_body_has_only_set_fields_with_telnyx_names() -> None:
    req = DialRequest(to="+18005550100", from_="+18005550101", connection_id="c",
                      timeout_secs=30, bridge_intent=False)
    assert req.to_body() == {"to": "+18005550100", "from": "+18005550101",
                             "connection_id": "c", "timeout_secs": 30, "bridge_intent": False}


@pytest.mark.parametrize("body", [MINIMAL, FULL])
def test_from_body_round_trip(body: dict[str, Any]) -> None:
    req = DialRequest.from_body(body)
    assert req.to_body() == body
    req.validate()


def test_from_body_rejects_unknown_and_missing_keys() -> None:
    with pytest.raises(InvalidRequest) as info:
        DialRequest.from_body({"to": "+18005550100", "from_": "+18005550101", "colour": 1})
    assert [e.pointer for e in info.value.errors] == ["/from", "/connection_id", "/from_",
                                                      "/colour"]


def test_validate_raises_invalid_request_with_problems() -> None:
    req = DialRequest(to="+18005550100", from_="8005550101", connection_id="c",
                      media_name="m", audio_url="https://x/a.wav")
    with pytest.raises(InvalidRequest) as info:
        req.validate()
    assert info.value.status is None
    assert [(e.code, e.pointer) for e in info.value.errors] == [
        ("10016", "/from"), ("10002", "/media_name")]
    assert "\n" not in str(info.value)


def test_secrets_not_in_repr() -> None:
    req = DialRequest(to="+18005550100", from_="+18005550101", connection_id="c",
                      sip_auth_password="pw-123", stream_auth_token="tok-456")
    assert "pw-123" not in repr(req) and "tok-456" not in repr(req)


def test_results_parse() -> None:
    r = DialResult.from_data({"call_control_id": "v3:x", "call_leg_id": "l",
                              "call_session_id": "s", "client_state": None}, sends=2)
    assert (r.call_control_id, r.call_leg_id, r.client_state, r.sends) == ("v3:x", "l", None, 2)
    s = CallStatus.from_data({"call_control_id": "v3:x", "is_alive": True,
                              "start_time": "2019-01-23T18:10:02.574Z", "end_time": None})
    assert s.is_alive and s.start_time is not None and s.end_time is None
    assert s.call_duration is None


# --- error mapping ---------------------------------------------------------------------------

def _body(code: str) -> bytes:
    error = {"code": code, "title": "T", "detail": "D", "source": {"pointer": "/to"}}
    return json.dumps({"errors": [error]}).encode()


@pytest.mark.parametrize(("status", "code", "cls"), [
    (401, "10009", AuthenticationError),
    (403, "10010", AuthenticationError),
    (400, "10015", InvalidRequest),
    (422, "10016", InvalidRequest),
    (422, "90018", CallEnded),
    (422, "90015", CallNotFound),
    (404, "10005", CallNotFound),
    (429, "90103", RateLimited),
    (500, "10007", ServerError),
    (503, "10007", ServerError),
    (409, "10000", TelnyxError),
])
def test_error_mapping(status: int, code: str, cls: type[TelnyxError]) -> None:
    exc = error_from_response(status, {}, _body(code), what="POST /calls")
    assert type(exc) is cls and isinstance(exc, DialerError)
    assert exc.status == status and exc.codes == [code]
    assert exc.errors[0].pointer == "/to"
    assert str(exc).startswith(f"Telnyx POST /calls failed with HTTP {status}: ")


def test_rate_limit_hints() -> None:
    exc = error_from_response(429, {"X-RateLimit-Reset": "4"}, _body("10011"), what="GET /x")
    assert isinstance(exc, RateLimited) and exc.code == "10011" and exc.reset_secs == 4.0
    exc = error_from_response(429, {"retry-after": "soon"}, b"", what="GET /x")
    assert isinstance(exc, RateLimited) and exc.code == "10011" and exc.reset_secs is None


@pytest.mark.parametrize("body", [b"", b"not json", b"[1]", b'{"errors": "x"}',
                                  b'{"errors": [1, {"code": 10007}]}', "\xff".encode("latin-1")])
def test_tolerates_odd_error_bodies(body: bytes) -> None:
    exc = error_from_response(500, {}, body, what="GET /x")
    assert isinstance(exc, ServerError) and "\n" not in str(exc)
    assert parse_errors(body) in ([], [parse_errors(b'{"errors":[{"code":10007}]}')[0]])


#: The fast tier (pytest -m fast): no database, no processes.
pytestmark = pytest.mark.fast
