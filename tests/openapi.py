"""The official Telnyx OpenAPI document as jsonschema validators, for every test that checks what
we send or answer against it: component schemas (`schema_errors`), the response schemas of each
operation and the webhook schemas under `webhooks`.

The document lives in `shared/telnyx/` beside the repository's checkout (as CI lays it out)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

REPOSITORY = Path(__file__).resolve().parents[1]
OPENAPI_PATH = REPOSITORY.parent / "shared" / "telnyx" / "call-control.openapi.json"
_URI = "urn:telnyx:call-control"


@cache
def openapi() -> dict[str, Any]:
    if not OPENAPI_PATH.exists():
        pytest.skip(f"the Telnyx OpenAPI document is not at {OPENAPI_PATH}")
    data: dict[str, Any] = json.loads(OPENAPI_PATH.read_text())
    return data


@cache
def _registry() -> Registry:
    return Registry().with_resource(
        _URI, Resource.from_contents(openapi(), default_specification=DRAFT202012)
    )


def _validator(schema: dict[str, Any]) -> Draft202012Validator:
    return Draft202012Validator(schema, registry=_registry(), format_checker=FormatChecker())


@cache
def schema_validator(name: str) -> Draft202012Validator:
    """A validator for `components.schemas[name]`; `$ref`s resolve within the document."""
    return _validator({"$ref": f"{_URI}#/components/schemas/{name}"})


def schema_errors(name: str, instance: Any) -> list[str]:
    return errors_of(schema_validator(name), instance)


#: Which OpenAPI schema each request body must satisfy: the dial's path, else the command's name.
BODY_SCHEMAS = {
    "/v2/calls": "CallRequest",
    "hangup": "HangupRequest",
    "playback_start": "PlayAudioUrlRequest",
    "speak": "SpeakRequest",
    "transfer": "TransferCallRequest",
    "gather_using_speak": "GatherUsingSpeakRequest",
    "gather_using_audio": "GatherUsingAudioRequest",
}


def command_errors(actions: list[dict[str, Any]]) -> list[str]:
    """Schema problems of every command in a simulator ledger's `actions` (each with its whole
    `request` body), named by the command."""
    return [f"{a['action']}: {problem}" for a in actions
            for problem in schema_errors(BODY_SCHEMAS[a["action"]], a["request"])]


def _pointer(*parts: str) -> str:
    return "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


@cache
def response_validator(path: str, method: str, status: str) -> Draft202012Validator:
    """Validator of the JSON body of `status` for `method path` (following a `$ref`ed response)."""
    response = openapi()["paths"][path][method]["responses"][status]
    if "$ref" in response:
        base: tuple[str, ...] = ("components", "responses", response["$ref"].rsplit("/", 1)[-1])
    else:
        base = ("paths", path, method, "responses", status)
    # A $ref to the schema's place in the document, so the $refs inside it resolve.
    pointer = _pointer(*base, "content", "application/json", "schema")
    return _validator({"$ref": f"{_URI}#/{pointer}"})


@cache
def webhook_validators() -> dict[str, Draft202012Validator]:
    """event_type -> validator of the whole webhook body, from the `webhooks` section."""
    doc = openapi()
    out: dict[str, Draft202012Validator] = {}
    for name, hook in doc["webhooks"].items():
        ref = hook["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        event_schema = doc["components"]["schemas"][ref.rsplit("/", 1)[-1]]
        data_ref = event_schema["properties"]["data"]["$ref"]
        data_schema = doc["components"]["schemas"][data_ref.rsplit("/", 1)[-1]]
        event_type = data_schema["properties"]["event_type"]["enum"][0]
        out[event_type] = _validator({"$ref": f"{_URI}#/" + _pointer(
            "webhooks", name, "post", "requestBody", "content", "application/json", "schema")})
    return out


def errors_of(validator: Draft202012Validator, instance: Any) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in validator.iter_errors(instance)
    ]


def assert_response_valid(path: str, method: str, status: int, body: Any) -> None:
    key = str(status)
    responses = openapi()["paths"][path][method]["responses"]
    if key not in responses:
        key = "default"
    problems = errors_of(response_validator(path, method, key), body)
    assert not problems, f"{method.upper()} {path} {status}: {problems}\n{body}"


def assert_webhook_valid(body: dict[str, Any]) -> None:
    event_type = body["data"]["event_type"]
    validator = webhook_validators().get(event_type)
    assert validator is not None, f"no webhook schema for {event_type}"
    problems = errors_of(validator, body)
    assert not problems, f"{event_type}: {problems}\n{body}"
