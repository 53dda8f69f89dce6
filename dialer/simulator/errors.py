"""Telnyx-shaped error responses: `{"errors": [{"code", "title", "detail", "source"?}]}`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from aiohttp import web

from campaigns.telnyx_schema.fields import FieldProblem

AUTH_FAILED = "10009"
UNEXPECTED = "10007"
NOT_FOUND = "10005"
BAD_REQUEST = "10015"
BAD_ENCODING = "10028"
INVALID = "10002"
INVALID_CALL_CONTROL_ID = "90015"
CALL_ENDED = "90018"
NOT_ANSWERED = "90034"
DIALS_PER_SECOND = "90103"


def error(code: str, title: str, detail: str | None = None,
          pointer: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"code": code, "title": title}
    if detail is not None:
        out["detail"] = detail
    if pointer is not None:
        out["source"] = {"pointer": pointer}
    return out


def error_response(
    status: int,
    code: str,
    title: str,
    detail: str | None = None,
    pointer: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    return web.json_response(
        {"errors": [error(code, title, detail, pointer)]}, status=status, headers=headers
    )


def problems_response(problems: Iterable[FieldProblem], status: int = 422) -> web.Response:
    """Every validation problem in one 422, as Telnyx lists them."""
    return web.json_response(
        {"errors": [p.as_telnyx_error() for p in problems]}, status=status
    )
