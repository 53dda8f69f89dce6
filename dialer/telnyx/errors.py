"""Errors of the Telnyx boundary: HTTP failures of the Call Control API and bad webhook signatures.

`error_from_response` turns a status, headers and body (parsed or not) into the right subclass.
Messages are one readable line and never contain the API key: nothing here ever sees it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dialer.errors import DialerError

__all__ = [
    "ApiError",
    "AuthenticationError",
    "CallEnded",
    "CallNotFound",
    "InvalidRequest",
    "InvalidSignature",
    "NetworkError",
    "RateLimited",
    "ServerError",
    "SlotMissed",
    "TelnyxError",
    "error_from_response",
    "parse_errors",
]

DIAL_RATE_LIMIT = "90103"
GENERAL_RATE_LIMIT = "10011"
INVALID_CALL_CONTROL_ID = "90015"
CALL_ALREADY_ENDED = "90018"


@dataclass(frozen=True)
class ApiError:
    """One entry of a Telnyx `errors` list."""

    code: str
    title: str = ""
    detail: str = ""
    pointer: str | None = None

    def __str__(self) -> str:
        text = self.detail or self.title or "error"
        if self.pointer and self.pointer not in text:
            text = f"{self.pointer}: {text}"
        return f"{text} ({self.code})" if self.code else text


class TelnyxError(DialerError):
    """A request to the Telnyx API failed."""

    def __init__(
        self, message: str, *, status: int | None = None, errors: list[ApiError] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.errors: list[ApiError] = list(errors or [])

    @property
    def codes(self) -> list[str]:
        return [e.code for e in self.errors]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r}, status={self.status!r})"


class AuthenticationError(TelnyxError):
    """401/403: the API key is missing, wrong or lacks permission."""


class InvalidRequest(TelnyxError):
    """422 (or 400): Telnyx rejected the request's content; sending it again will not help."""


class CallEnded(InvalidRequest):
    """422 with 90018: the call has already ended."""


class CallNotFound(TelnyxError):
    """404, or 422 with 90015: no such call (unknown id, or ended more than 10 minutes ago)."""


class RateLimited(TelnyxError):
    """429: not processed. `code` is '90103' (dials per second) or '10011' (general API limit)."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = 429,
        errors: list[ApiError] | None = None,
        code: str = GENERAL_RATE_LIMIT,
        reset_secs: float | None = None,
    ) -> None:
        super().__init__(message, status=status, errors=errors)
        self.code = code
        self.reset_secs = reset_secs


class ServerError(TelnyxError):
    """5xx: Telnyx failed; the request may or may not have taken effect."""


class NetworkError(TelnyxError):
    """No HTTP answer: connection refused/reset, DNS failure or timeout. Whether the request
    reached Telnyx is unknown unless it is the subclass `NotSent`."""


class NotSent(NetworkError):
    """The request never left: the connection could not be made (refused, DNS, TLS, connect
    timeout). Nothing happened at Telnyx, so it is safe to send again (or give up) at once."""


class SlotMissed(NotSent):
    """A dial's slot had passed by more than its tolerance when its bytes were about to be
    written (`dial_encoded(write_by=...)`): nothing was written, nothing reached Telnyx; the
    caller takes a new slot instead of sending late (a late dial would bunch with the next)."""


class OutcomeUnknown(NetworkError):
    """The request may have reached Telnyx (a timeout or a connection lost after it was
    written): only webhooks or a lookup can tell what happened."""


class InvalidSignature(DialerError):
    """A webhook's Ed25519 signature or timestamp does not check out."""


def parse_errors(body: Any) -> list[ApiError]:
    """The `errors` of a Telnyx error body (bytes, str or parsed JSON); [] when there are none."""
    if isinstance(body, (bytes, bytearray)):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except ValueError:
            return []
    if not isinstance(body, Mapping) or not isinstance(body.get("errors"), list):
        return []
    errors: list[ApiError] = []
    for item in body["errors"]:
        if not isinstance(item, Mapping):
            continue
        source = item.get("source")
        pointer = source.get("pointer") if isinstance(source, Mapping) else None
        errors.append(ApiError(
            code=str(item.get("code") or ""),
            title=str(item.get("title") or ""),
            detail=str(item.get("detail") or ""),
            pointer=str(pointer) if pointer is not None else None,
        ))
    return errors


def _reset_secs(headers: Mapping[str, str]) -> float | None:
    lowered = {k.lower(): v for k, v in headers.items()}
    for name in ("retry-after", "x-ratelimit-reset"):
        try:
            value = float(lowered[name])
        except (KeyError, ValueError):
            continue
        if value >= 0:
            return value
    return None


def _snippet(text: str, limit: int = 200) -> str:
    one_line = " ".join(text.split())
    return one_line if len(one_line) <= limit else one_line[: limit - 3] + "..."


def error_from_response(
    status: int, headers: Mapping[str, str], body: bytes | str, *, what: str
) -> TelnyxError:
    """The exception for a non-2xx answer to `what` (e.g. "POST /calls")."""
    errors = parse_errors(body)
    codes = {e.code for e in errors}
    if errors:
        summary = "; ".join(str(e) for e in errors)
    else:
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        summary = _snippet(text) or "no details"
    message = f"Telnyx {what} failed with HTTP {status}: {summary}"
    if status in (401, 403):
        return AuthenticationError(
            f"{message} (check TELNYX_API_KEY)", status=status, errors=errors
        )
    if status == 429:
        code = DIAL_RATE_LIMIT if DIAL_RATE_LIMIT in codes else GENERAL_RATE_LIMIT
        return RateLimited(message, status=status, errors=errors, code=code,
                           reset_secs=_reset_secs(headers))
    if status == 404 or (status == 422 and INVALID_CALL_CONTROL_ID in codes):
        return CallNotFound(message, status=status, errors=errors)
    if status == 422 and CALL_ALREADY_ENDED in codes:
        return CallEnded(message, status=status, errors=errors)
    if status in (400, 422):
        return InvalidRequest(message, status=status, errors=errors)
    if status >= 500:
        return ServerError(message, status=status, errors=errors)
    return TelnyxError(message, status=status, errors=errors)
