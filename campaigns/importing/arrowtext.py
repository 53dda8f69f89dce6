"""Column-wise text building with Arrow kernels: JSON objects for custom fields without a Python
call per row (json.dumps per row costs more than the rest of an import put together)."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_SIMPLE_ESCAPES = (("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t"))
_OTHER_CONTROL = r"[\x00-\x08\x0b\x0c\x0e-\x1f]"
_OTHER_CONTROL_RE = re.compile(_OTHER_CONTROL)
_OTHER_CONTROL_CHARS = [chr(c) for c in range(0x20) if chr(c) not in "\n\r\t"]


class _NoPandas:
    """A module finder for which pandas is not installed."""

    @staticmethod
    def find_spec(name: str, path: object = None, target: object = None) -> ModuleSpec | None:
        if name == "pandas":
            raise ModuleNotFoundError("pandas is not probed", name=name)
        return None


def skip_pandas_probe() -> None:
    """Spare a process that does not use pandas the import of pandas (~0.6 s).

    The first `pa.array`/`pa.scalar` of Python values asks pyarrow's pandas shim whether the value
    is a pandas object, and the shim imports pandas to find out. Here that first question is
    asked while pandas cannot be imported: the shim then answers "not a pandas object" without
    importing it. pyarrow's pandas features (`to_pandas`, ...) still import pandas when they are
    called. Does nothing when pandas is imported already."""
    if "pandas" in sys.modules:
        return
    sys.meta_path.insert(0, _NoPandas)
    try:
        pa.scalar(0)
    finally:
        sys.meta_path.remove(_NoPandas)


def _has(arr: pa.Array, needle: str) -> bool:
    return bool(pc.any(pc.match_substring(arr, needle)).as_py())


def _byte_counts(arr: pa.Array) -> np.ndarray | None:
    """How often each byte value occurs in the strings of `arr` (one pass over its data buffer;
    bytes of null slots may count too), or None for an array not laid out as plain `string`."""
    if arr.type != pa.string() or len(arr) == 0:
        return None
    bufs = arr.buffers()
    offsets = np.frombuffer(bufs[1], np.int32, len(arr) + 1, 4 * arr.offset)
    if bufs[2] is None:
        return np.zeros(256, np.int64)
    data = np.frombuffer(bufs[2], np.uint8)[offsets[0]:offsets[-1]]
    return np.bincount(data, minlength=256)


def json_quote(arr: pa.Array) -> pa.Array:
    """Each string as a JSON string literal (quoted and escaped), exactly as json.dumps would
    write it with ensure_ascii=False."""
    out = arr
    counts = _byte_counts(arr)
    if counts is None:
        out = _escape(arr, None)
    elif counts[:0x20].any() or counts[ord('"')] or counts[ord("\\")]:
        out = _escape(arr, counts)
    return pc.binary_join_element_wise(pa.scalar('"'), out, pa.scalar('"'), "")


def _escape(arr: pa.Array, counts: np.ndarray | None) -> pa.Array:
    """`counts`: the array's byte counts (None: unknown); the escapes only add backslashes and
    letters, so what the original holds decides which replacements are needed."""
    out = arr
    for raw, escaped in _SIMPLE_ESCAPES:
        if counts[ord(raw)] if counts is not None else _has(out, raw):
            out = pc.replace_substring(out, raw, escaped)
    control = counts is None or any(counts[ord(c)] for c in _OTHER_CONTROL_CHARS)
    if control and bool(pc.any(pc.match_substring_regex(arr, _OTHER_CONTROL)).as_py()):
        values = out.to_pylist()
        out = pa.array([v if v is None or not _OTHER_CONTROL_RE.search(v) else
                        _OTHER_CONTROL_RE.sub(lambda m: f"\\u{ord(m.group()):04x}", v)
                        for v in values], pa.string())
    return out


def json_objects(names: Sequence[str], columns: Sequence[pa.Array], size: int) -> pa.Array:
    """One JSON object per row: {names[0]: columns[0][row], ...} with every value a string."""
    if not names:
        return pa.array(["{}"] * size, pa.string())
    parts: list[pa.Array | pa.Scalar] = []
    for i, (name, col) in enumerate(zip(names, columns)):
        key = json.dumps(name, ensure_ascii=False)
        parts.append(pa.scalar(("{" if i == 0 else ",") + key + ":"))
        parts.append(json_quote(col))
    parts.append(pa.scalar("}"))
    return pc.binary_join_element_wise(*parts, "")


def blank_rows(columns: list[pa.Array]) -> np.ndarray:
    """Rows whose cells are all empty or whitespace."""
    size = len(columns[0]) if columns else 0
    total = np.zeros(size, np.int64)
    for col in columns:
        total += pc.binary_length(col).to_numpy(zero_copy_only=False)
    # Only short rows can be all whitespace: test just those.
    maybe = np.nonzero(total <= 4 * len(columns))[0]
    blank = np.zeros(size, bool)
    if len(maybe):
        sub = np.ones(len(maybe), bool)
        idx = pa.array(maybe)
        for col in columns:
            sub &= pc.equal(pc.utf8_trim_whitespace(col.take(idx)), "").to_numpy(
                zero_copy_only=False)
        blank[maybe] = sub
    return blank


def empty_to_null(arr: pa.Array) -> pa.Array:
    """Blank cells (only whitespace) become nulls; the others are kept verbatim."""
    blank = pc.equal(pc.utf8_trim_whitespace(arr), "")
    return pc.if_else(blank, pa.scalar(None, pa.string()), arr)


def strip_nul(arr: pa.Array) -> pa.Array:
    """Text with NUL characters removed (databases cannot store them in text)."""
    return pc.replace_substring(arr, "\x00", "") if _has(arr, "\x00") else arr
