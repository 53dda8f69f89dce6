"""Declarative specs for settings fields (Telnyx dial fields and the dialer's own keys).

One spec drives three things: validation with Telnyx-style problems (code, pointer, detail), the CLI
flags of `dialer campaign create` (one flag per key), and the documentation of `campaign.toml`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["str", "int", "float", "bool", "object", "array", "str_or_array"]

# Telnyx error codes used for validation problems (see REFERENCE.md).
MISSING = "10004"
NOT_E164 = "10016"
BAD_CONNECTION = "10015"
BAD_ENUM = "10032"
OUT_OF_RANGE = "10033"
INVALID = "10002"  # generic "invalid parameter" (type errors, patterns, cross-field rules)


@dataclass(frozen=True)
class FieldProblem:
    """One thing wrong with one field, shaped like a Telnyx error object."""

    field: str
    code: str
    title: str
    detail: str

    @property
    def pointer(self) -> str:
        return "/" + self.field.replace(".", "/")

    def as_telnyx_error(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "title": self.title,
            "detail": self.detail,
            "source": {"pointer": self.pointer},
        }

    def __str__(self) -> str:
        return f"{self.field}: {self.detail}"


@dataclass(frozen=True)
class FieldSpec:
    """What one settings key accepts."""

    name: str
    kind: Kind
    help: str = ""
    enum: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None
    pattern_help: str | None = None
    default: Any = None
    secret: bool = False

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


def _type_ok(kind: Kind, value: Any) -> bool:
    if kind == "str":
        return isinstance(value, str)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "object":
        return isinstance(value, Mapping)
    if kind == "array":
        return isinstance(value, list)
    if kind == "str_or_array":
        return isinstance(value, str) or (
            isinstance(value, list) and all(isinstance(v, str) for v in value)
        )
    return False


_KIND_NAMES = {
    "str": "a string",
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "object": "an object (table)",
    "array": "a list",
    "str_or_array": "a string or a list of strings",
}


def check_value(spec: FieldSpec, value: Any) -> FieldProblem | None:
    """Return the problem with `value` for `spec`, or None when it is acceptable."""
    if not _type_ok(spec.kind, value):
        return FieldProblem(
            spec.name, INVALID, "Invalid parameter type",
            f"must be {_KIND_NAMES[spec.kind]}, got {value!r}",
        )
    if isinstance(value, float) and not math.isfinite(value):
        return FieldProblem(spec.name, INVALID, "Invalid parameter type",
                            f"must be a finite number, got {value!r}")
    if spec.kind in ("object", "array", "str_or_array") and not _json_safe(value):
        return FieldProblem(spec.name, INVALID, "Invalid parameter type",
                            "must hold only strings, finite numbers, booleans, lists and tables "
                            "(no dates, times or NaN)")
    if spec.enum is not None and value not in spec.enum:
        allowed = ", ".join(str(v) for v in spec.enum)
        return FieldProblem(
            spec.name, BAD_ENUM, "Invalid enumerated value",
            f"{value!r} is not one of the allowed values: {allowed}",
        )
    if spec.kind in ("int", "float"):
        if (spec.minimum is not None and value < spec.minimum) or (
            spec.maximum is not None and value > spec.maximum
        ):
            return FieldProblem(
                spec.name, OUT_OF_RANGE, "Value outside of range",
                f"{value!r} is outside the allowed range {_range_text(spec)}",
            )
    if spec.kind == "str":
        if spec.min_length is not None and len(value) < spec.min_length or (
            spec.max_length is not None and len(value) > spec.max_length
        ):
            return FieldProblem(
                spec.name, OUT_OF_RANGE, "Value outside of range",
                f"length {len(value)} is outside the allowed {spec.min_length or 0}"
                f"-{spec.max_length if spec.max_length is not None else 'any'} characters",
            )
        if spec.pattern is not None and not re.fullmatch(spec.pattern, value):
            return FieldProblem(
                spec.name, INVALID, "Invalid parameter",
                spec.pattern_help or f"{value!r} does not match {spec.pattern}",
            )
    return None


def _json_safe(value: Any) -> bool:
    """Storable as strict JSON (what the campaign row and the dial body need)."""
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


def _range_text(spec: FieldSpec) -> str:
    lo = "-inf" if spec.minimum is None else _num(spec.minimum)
    hi = "inf" if spec.maximum is None else _num(spec.maximum)
    return f"{lo}..{hi}"


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)
