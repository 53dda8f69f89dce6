"""Read every report format back, and compare what was read with the oracle's typed values."""

from __future__ import annotations

import csv
import io
import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from campaigns.reports.safety import csv_text

TEXT_FORMATS = ("csv", "jsonl")


def read_csv(text: str) -> tuple[list[str], list[dict[str, str]]]:
    rows = list(csv.reader(io.StringIO(text, newline="")))
    header, body = rows[0], rows[1:]
    return header, [dict(zip(header, r)) for r in body]


def read_jsonl(text: str) -> tuple[list[str], list[dict[str, Any]]]:
    rows = [json.loads(line) for line in text.splitlines() if line]
    return (list(rows[0]) if rows else []), rows


def read_xlsx(path: Path) -> tuple[list[str], list[dict[str, Any]]]:
    from openpyxl import load_workbook

    wb = load_workbook(path)
    ws = wb.worksheets[0]
    values = [[c.value for c in row] for row in ws.iter_rows()]
    header = [str(v) for v in values[0]]
    return header, [dict(zip(header, r)) for r in values[1:]]


def read_parquet(path: Path) -> tuple[list[str], list[dict[str, Any]]]:
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    return table.column_names, table.to_pylist()


def read(fmt: str, path: Path) -> tuple[list[str], list[dict[str, Any]]]:
    if fmt == "csv":
        with open(path, encoding="utf-8", newline="") as fh:  # keep \r inside quoted cells
            return read_csv(fh.read())
    if fmt == "jsonl":
        return read_jsonl(path.read_text(encoding="utf-8"))
    if fmt == "xlsx":
        return read_xlsx(path)
    return read_parquet(path)


def _same_float(a: Any, b: float) -> bool:
    return a is not None and math.isclose(float(a), b, abs_tol=1e-3)


def matches(fmt: str, actual: Any, expected: Any) -> bool:
    """Does the cell `actual`, as read from a `fmt` file, carry the typed value `expected`?"""
    if expected is None:
        return actual in (None, "")
    if isinstance(expected, bool):
        if fmt == "csv":
            return actual == ("true" if expected else "false")
        return actual is expected
    if isinstance(expected, int):
        return (actual == str(expected)) if fmt == "csv" else actual == expected
    if isinstance(expected, float):
        return _same_float(actual, expected)
    if isinstance(expected, datetime):
        if fmt in ("csv", "jsonl") or (fmt == "parquet" and isinstance(actual, str)):
            got = datetime.fromisoformat(actual)
            return got == expected and got.utcoffset() == expected.utcoffset()
        if fmt == "xlsx":
            naive = expected.replace(tzinfo=None)
            return abs((actual - naive).total_seconds()) < 0.001
        return actual == expected.astimezone(UTC)
    if isinstance(expected, str):
        if fmt == "xlsx":
            if expected == "":
                return actual in (None, "")  # an empty text cell reads back as no value
            # XML normalises line ends: a carriage return in a cell reads back as a line feed.
            return actual == expected.replace("\r\n", "\n").replace("\r", "\n")
        return actual == (csv_text(expected) if fmt == "csv" else expected)
    raise AssertionError(f"unexpected oracle value {expected!r}")


def assert_rows(fmt: str, actual: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    assert len(actual) == len(expected)
    for i, (got, want) in enumerate(zip(actual, expected)):
        assert list(got) == list(want), f"row {i}: columns differ"
        bad = {k: (got[k], v) for k, v in want.items() if not matches(fmt, got[k], v)}
        assert not bad, f"{fmt} row {i}: (got, expected) {bad}"
