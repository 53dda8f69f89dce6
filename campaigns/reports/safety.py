"""Spreadsheet formula-injection guard (CSV and XLSX).

A text cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage return (or their full-width
forms `＝ ＋ － ＠`, which some Excel input locales turn into the ASCII ones) could be run as a
formula or a DDE call by Excel or LibreOffice. Such a value is rendered as text:

* CSV: prefixed with a single quote (`'=HYPERLINK(...)`). Spreadsheets show it as text; the
  quote is part of the file's data, so it applies to *every* text cell, including E.164 phone
  numbers (`'+14155550100`) and negative-looking values (`'-1`). Machine consumers that want the
  values untouched should read JSONL or Parquet, which are typed and carry every value as-is.
* XLSX: written as a string cell (never a formula) with Excel's own "quote prefix" cell flag. Both
  Excel and LibreOffice show the value exactly as stored (no visible quote) and keep it text even
  when the cell is edited, so the data round-trips unchanged.

Numbers, booleans and times the report computes are typed values, never text, so the guard does
not touch them.
"""

from __future__ import annotations

from typing import Any

DANGEROUS_FIRST_CHARS = frozenset("=+-@\t\r\uff1d\uff0b\uff0d\uff20")


def is_dangerous(value: str) -> bool:
    return bool(value) and value[0] in DANGEROUS_FIRST_CHARS


def csv_text(value: str) -> str:
    """The CSV rendering of a text value: quote-prefixed when a spreadsheet could run it."""
    if value and value[0] in DANGEROUS_FIRST_CHARS:
        return "'" + value
    return value


#: RE2 pattern of a value `csv_text` would prefix (for Arrow's vectorised replace).
_DANGEROUS_START = "^([" + "".join(
    "\\" + c if c in "-\\]^" else c for c in sorted(DANGEROUS_FIRST_CHARS)) + "])"


def csv_text_array(values: Any) -> Any:
    """`csv_text` of every value of an Arrow string array (nulls stay null)."""
    import pyarrow.compute as pc

    return pc.replace_substring_regex(values, pattern=_DANGEROUS_START, replacement="'\\1")
