"""The official Telnyx OpenAPI document as jsonschema validators (for tests)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

#: The official schemas live in shared/ beside the checkout (CI lays a copy there).
_CANDIDATES = [Path(__file__).resolve().parents[3] / "shared" / "telnyx" / "call-control.openapi.json",
               Path("/work/shared/telnyx/call-control.openapi.json")]
OPENAPI_PATH = next((p for p in _CANDIDATES if p.exists()), _CANDIDATES[0])
_URI = "urn:telnyx:call-control"


@cache
def openapi() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(OPENAPI_PATH.read_text())
    return data


@cache
def _registry() -> Registry:
    resource = Resource.from_contents(openapi(), default_specification=DRAFT202012)
    return Registry().with_resource(_URI, resource)


@cache
def schema_validator(name: str) -> Draft202012Validator:
    """A validator for `components.schemas[name]`; `$ref`s resolve within the document."""
    return Draft202012Validator(
        {"$ref": f"{_URI}#/components/schemas/{name}"},
        registry=_registry(),
        format_checker=FormatChecker(),
    )


def schema_errors(name: str, instance: Any) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in schema_validator(name).iter_errors(instance)
    ]
