"""Ed25519 webhook signatures, as Telnyx makes them (PyNaCl does the cryptography).

Telnyx signs the UTF-8 bytes of f"{timestamp}|{raw_body}" and sends the base64 signature in
`telnyx-signature-ed25519` and the Unix seconds in `telnyx-timestamp`. The simulator signs with
`sign`; the receiver checks with `WebhookVerifier`.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Mapping

from nacl.exceptions import BadSignatureError, CryptoError
from nacl.signing import SigningKey, VerifyKey

from dialer.telnyx.errors import InvalidSignature

__all__ = [
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "WebhookVerifier",
    "generate_keypair",
    "public_key_from_private",
    "sign",
]

SIGNATURE_HEADER = "telnyx-signature-ed25519"
TIMESTAMP_HEADER = "telnyx-timestamp"
#: Unix seconds have 10 digits until the year 2286; anything past 15 is not a timestamp.
_MAX_DIGITS = 15


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _decode_key(key_b64: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(key_b64.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"{what} is not valid base64") from exc
    if len(raw) != 32:
        raise ValueError(f"{what} must be 32 bytes once base64-decoded, got {len(raw)}")
    return raw


def generate_keypair() -> tuple[str, str]:
    """A new (private seed, public key) pair, both base64 of 32 bytes."""
    key = SigningKey.generate()
    return _b64(bytes(key)), _b64(bytes(key.verify_key))


def public_key_from_private(private_b64: str) -> str:
    """The base64 public key that verifies what `private_b64` signs."""
    return _b64(bytes(SigningKey(_decode_key(private_b64, "private key")).verify_key))


def _signed_bytes(timestamp: str, body: bytes) -> bytes:
    # f"{timestamp}|{raw_body}" in UTF-8 is exactly the timestamp's ASCII, "|", then the raw bytes.
    return timestamp.encode("ascii") + b"|" + body


def sign(private_b64: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """The Telnyx signature headers for `body`, signed at `timestamp` (default: now)."""
    ts = str(int(time.time()) if timestamp is None else int(timestamp))
    key = SigningKey(_decode_key(private_b64, "private key"))
    signature = key.sign(_signed_bytes(ts, body)).signature
    return {SIGNATURE_HEADER: _b64(signature), TIMESTAMP_HEADER: ts}


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    for key, val in headers.items():  # case-insensitive fallback for plain dicts
        if key.lower() == name:
            return val
    return None


class WebhookVerifier:
    """Checks Telnyx webhook signatures against one public key (built once: hot path)."""

    __slots__ = ("_key", "tolerance_secs")

    def __init__(self, public_key_b64: str, tolerance_secs: int = 300) -> None:
        self._key = VerifyKey(_decode_key(public_key_b64, "TELNYX_PUBLIC_KEY"))
        self.tolerance_secs = tolerance_secs

    def verify(
        self, body: bytes, headers: Mapping[str, str], now: float | None = None
    ) -> None:
        """Raise InvalidSignature unless `body` was signed by our key within the tolerance."""
        signature_b64 = _header(headers, SIGNATURE_HEADER)
        timestamp = _header(headers, TIMESTAMP_HEADER)
        if not signature_b64:
            raise InvalidSignature(f"missing {SIGNATURE_HEADER} header")
        if not timestamp:
            raise InvalidSignature(f"missing {TIMESTAMP_HEADER} header")
        timestamp = timestamp.strip()
        # Bounded before int(): a 400-digit value overflows the float subtraction below, one
        # of 4,400 digits exceeds int()'s limit; neither may be anything but a 403.
        if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > _MAX_DIGITS:
            raise InvalidSignature(f"{TIMESTAMP_HEADER} is not Unix seconds")
        skew = (time.time() if now is None else now) - int(timestamp)
        if abs(skew) > self.tolerance_secs:
            raise InvalidSignature(
                f"{TIMESTAMP_HEADER} is {abs(skew):.0f}s {'old' if skew > 0 else 'in the future'}"
                f" (tolerance {self.tolerance_secs}s)"
            )
        try:
            signature = base64.b64decode(signature_b64.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise InvalidSignature(f"{SIGNATURE_HEADER} is not valid base64") from None
        if len(signature) != 64:
            raise InvalidSignature(f"{SIGNATURE_HEADER} must be 64 bytes, got {len(signature)}")
        try:
            self._key.verify(_signed_bytes(timestamp, body), signature)
        except (BadSignatureError, CryptoError):
            raise InvalidSignature("signature does not match the body") from None
