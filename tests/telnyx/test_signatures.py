"""Ed25519 webhook signatures: our signer, our verifier and the official SDK's verifier."""

from __future__ import annotations

import base64
import json
import time

import pytest
from telnyx import Telnyx

from dialer.telnyx.errors import InvalidSignature
from dialer.telnyx.signatures import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookVerifier,
    generate_keypair,
    public_key_from_private,
    sign,
)

BODY = json.dumps({
    "data": {"record_type": "event", "event_type": "call.hangup", "id": "0ccc7b54",
             "occurred_at": "2026-01-02T03:04:05.123456Z",
             "payload": {"call_control_id": "v3:abc", "client_state": None, "to": "+18005550100",
                         "from": "+18005550101", "hangup_cause": "normal_clearing"}},
    "meta": {"attempt": 1, "delivered_to": "https://example.com/webhooks"},
}, separators=(",", ":")).encode()


@pytest.fixture(scope="module")
def keys() -> tuple[str, str]:
    return generate_keypair()


def test_keypair_shapes(keys: tuple[str, str]) -> None:
    private, public = keys
    assert len(base64.b64decode(private)) == 32 and len(base64.b64decode(public)) == 32
    assert public_key_from_private(private) == public
    assert generate_keypair() != keys


def test_round_trip(keys: tuple[str, str]) -> None:
    private, public = keys
    headers = sign(private, BODY)
    assert set(headers) == {SIGNATURE_HEADER, TIMESTAMP_HEADER}
    assert len(base64.b64decode(headers[SIGNATURE_HEADER])) == 64
    assert abs(int(headers[TIMESTAMP_HEADER]) - time.time()) < 5
    WebhookVerifier(public).verify(BODY, headers)


def test_signed_bytes_are_timestamp_pipe_body(keys: tuple[str, str]) -> None:
    from nacl.signing import VerifyKey

    private, public = keys
    headers = sign(private, BODY, timestamp=1700000000)
    assert headers[TIMESTAMP_HEADER] == "1700000000"
    VerifyKey(base64.b64decode(public)).verify(
        f"1700000000|{BODY.decode()}".encode(), base64.b64decode(headers[SIGNATURE_HEADER]))


def test_header_lookup_is_case_insensitive(keys: tuple[str, str]) -> None:
    private, public = keys
    headers = {k.title(): v for k, v in sign(private, BODY).items()}
    WebhookVerifier(public).verify(BODY, headers)


def test_tampered_body_rejected(keys: tuple[str, str]) -> None:
    private, public = keys
    headers = sign(private, BODY)
    with pytest.raises(InvalidSignature, match="does not match"):
        WebhookVerifier(public).verify(BODY.replace(b"normal_clearing", b"user_busy"), headers)


def test_other_key_rejected(keys: tuple[str, str]) -> None:
    other_private, _ = generate_keypair()
    with pytest.raises(InvalidSignature):
        WebhookVerifier(keys[1]).verify(BODY, sign(other_private, BODY))


def test_changed_timestamp_rejected(keys: tuple[str, str]) -> None:
    private, public = keys
    headers = sign(private, BODY)
    headers[TIMESTAMP_HEADER] = str(int(headers[TIMESTAMP_HEADER]) + 1)
    with pytest.raises(InvalidSignature):
        WebhookVerifier(public).verify(BODY, headers)


@pytest.mark.parametrize("skew", [-301, 301, -10_000, 10_000])
def test_stale_and_future_timestamps_rejected(keys: tuple[str, str], skew: int) -> None:
    private, public = keys
    now = 1_800_000_000
    headers = sign(private, BODY, timestamp=now + skew)
    with pytest.raises(InvalidSignature, match="old|future"):
        WebhookVerifier(public).verify(BODY, headers, now=now)


@pytest.mark.parametrize("skew", [-300, 0, 300])
def test_timestamps_within_tolerance_accepted(keys: tuple[str, str], skew: int) -> None:
    private, public = keys
    now = 1_800_000_000
    WebhookVerifier(public).verify(BODY, sign(private, BODY, timestamp=now + skew), now=now)


def test_custom_tolerance(keys: tuple[str, str]) -> None:
    private, public = keys
    headers = sign(private, BODY, timestamp=1000)
    WebhookVerifier(public, tolerance_secs=60).verify(BODY, headers, now=1060)
    with pytest.raises(InvalidSignature):
        WebhookVerifier(public, tolerance_secs=60).verify(BODY, headers, now=1061)


@pytest.mark.parametrize("headers", [
    {},
    {TIMESTAMP_HEADER: "1800000000"},
    {SIGNATURE_HEADER: base64.b64encode(b"x" * 64).decode()},
    {SIGNATURE_HEADER: "not base64!!", TIMESTAMP_HEADER: "1800000000"},
    {SIGNATURE_HEADER: base64.b64encode(b"short").decode(), TIMESTAMP_HEADER: "1800000000"},
    {SIGNATURE_HEADER: base64.b64encode(b"x" * 64).decode(), TIMESTAMP_HEADER: "yesterday"},
    {SIGNATURE_HEADER: base64.b64encode(b"x" * 64).decode(), TIMESTAMP_HEADER: "-5"},
    {SIGNATURE_HEADER: base64.b64encode(b"x" * 64).decode(), TIMESTAMP_HEADER: "1800000000"},
])
def test_missing_or_garbled_headers_rejected(
    keys: tuple[str, str], headers: dict[str, str]
) -> None:
    with pytest.raises(InvalidSignature):
        WebhookVerifier(keys[1]).verify(BODY, headers, now=1_800_000_000)


def test_bad_public_key_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        WebhookVerifier("not-a-key")
    with pytest.raises(ValueError):
        WebhookVerifier(base64.b64encode(b"x" * 31).decode())


# --- the official SDK -------------------------------------------------------------------------

def test_official_sdk_accepts_what_we_sign(keys: tuple[str, str]) -> None:
    private, public = keys
    client = Telnyx(api_key="KEY_unused", base_url="http://127.0.0.1:9/v2")
    event = client.webhooks.unwrap(BODY.decode(), headers=sign(private, BODY), key=public)
    data = event.to_dict()["data"]
    assert isinstance(data, dict) and data["event_type"] == "call.hangup"


def test_official_sdk_rejects_a_tampered_body(keys: tuple[str, str]) -> None:
    private, public = keys
    client = Telnyx(api_key="KEY_unused", base_url="http://127.0.0.1:9/v2")
    tampered = BODY.replace(b"normal_clearing", b"user_busy").decode()
    with pytest.raises(ValueError, match="[Ss]ignature"):
        client.webhooks.unwrap(tampered, headers=sign(private, BODY), key=public)


def test_official_lib_verifier_agrees(keys: tuple[str, str]) -> None:
    from telnyx.lib.webhook_verification import WebhookVerificationError, verify_webhook_signature

    private, public = keys
    headers = sign(private, BODY)
    verify_webhook_signature(BODY, headers, public)
    with pytest.raises(WebhookVerificationError):
        verify_webhook_signature(BODY + b" ", headers, public)


#: The fast tier (pytest -m fast): no database, no processes.
pytestmark = pytest.mark.fast
