"""Streaming writers: each takes rows chunk by chunk and writes them out at once, so memory stays
flat whatever the number of rows.

Rendering per column kind (see `columns.Kind`; docs/reports.md has the full table): text is
formula-guarded in CSV and XLSX and as-is in JSONL and Parquet; talk seconds have 3 decimals in
CSV; booleans are true/false; UTC and local times are ISO 8601 with their offset (`iso`), except
in XLSX (date-time cells holding wall times: Excel has no time zones) and Parquet (UTC times are
timestamp[us, UTC]; local times stay ISO text, as each row has its own zone).
Empty values are empty cells / JSON null / Parquet null.
"""

from __future__ import annotations

import contextlib
import csv
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from campaigns.reports.columns import Column, Kind
from campaigns.reports.rows import Row
from campaigns.reports.safety import DANGEROUS_FIRST_CHARS, csv_text


class RowWriter(ABC):
    def __init__(self, columns: Sequence[Column]) -> None:
        self.columns = list(columns)
        self.rows_written = 0

    @abstractmethod
    def write(self, rows: list[Row]) -> None: ...

    def close(self) -> None:
        """Finish the output (footer, last row group); the caller closes the file itself."""

    def abort(self) -> None:
        """Release what the writer holds after a failure (the caller removes the file)."""


# ---- CSV --------------------------------------------------------------------------------------

def iso(dt: datetime) -> str:
    """ISO 8601 with the offset, a fraction of a second only when there is one and without
    trailing zeros (2026-03-02T15:00:00.25+00:00): what PostgreSQL's text output gives, so that
    `pgcopy` writes the same text."""
    text = dt.isoformat()
    if not dt.microsecond:
        return text
    dot = text.index(".", 19)  # YYYY-MM-DDTHH:MM:SS.ffffff+HH:MM
    return text[:dot] + text[dot : dot + 7].rstrip("0") + text[dot + 7 :]


def _bool_text(value: bool) -> str:
    return "true" if value else "false"


def _float_text(value: float) -> str:
    return f"{value:.3f}"


_CSV_CONVERT: dict[Kind, Callable[[Any], Any] | None] = {
    Kind.TEXT: csv_text,
    Kind.INT: None,
    Kind.FLOAT: _float_text,
    Kind.BOOL: _bool_text,
    Kind.UTC: iso,
    Kind.LOCAL: iso,
}


class CsvWriter(RowWriter):
    """RFC 4180 CSV: a cell with a comma, quote, CR or LF is quoted (quotes doubled), UTF-8, rows
    end in CRLF. (With an LF terminator Python's csv module would leave a lone CR unquoted.)"""

    def __init__(self, fh: IO[str], columns: Sequence[Column]) -> None:
        super().__init__(columns)
        self._out = csv.writer(fh, lineterminator="\r\n")
        self._out.writerow([csv_text(c.name) for c in self.columns])
        self._convert = [(i, f) for i, c in enumerate(self.columns)
                         if (f := _CSV_CONVERT[c.kind]) is not None]

    def write(self, rows: list[Row]) -> None:
        convert = self._convert
        out: list[list[Any]] = []
        for row in rows:
            cells = list(row)
            for i, f in convert:
                v = cells[i]
                if v is not None:
                    cells[i] = f(v)
            out.append(cells)
        self._out.writerows(out)
        self.rows_written += len(rows)


# ---- JSON lines -------------------------------------------------------------------------------

def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


class JsonlWriter(RowWriter):
    """One JSON object per line, keys in column order, typed values as-is (no formula guard:
    JSON is read by programs, not spreadsheets)."""

    def __init__(self, fh: IO[str], columns: Sequence[Column]) -> None:
        super().__init__(columns)
        self._fh = fh
        self._names = [c.name for c in self.columns]
        self._encoder = json.JSONEncoder(ensure_ascii=False, default=_json_default)

    def write(self, rows: list[Row]) -> None:
        names = self._names
        encode = self._encoder.encode
        self._fh.write("".join(encode(dict(zip(names, row))) + "\n" for row in rows))
        self.rows_written += len(rows)


# ---- XLSX -------------------------------------------------------------------------------------

#: Excel's limits: rows per sheet (header included) and characters per cell.
XLSX_MAX_ROWS = 1_048_576
XLSX_MAX_CELL_CHARS = 32_767


class XlsxWriter(RowWriter):
    """An openpyxl write-only workbook (rows go to a temp file as they come). A report longer than
    a sheet continues on "<title> (2)", ... with the header repeated."""

    def __init__(self, path: Path, columns: Sequence[Column], title: str) -> None:
        from openpyxl import Workbook
        from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

        super().__init__(columns)
        self._path = path
        self._title = title
        self._wb = Workbook(write_only=True)
        self._illegal = ILLEGAL_CHARACTERS_RE
        self._kinds = [c.kind for c in self.columns]
        self._sheets = 0
        self._sheet_rows = 0
        self._new_sheet()

    def _new_sheet(self) -> None:
        self._sheets += 1
        title = self._title if self._sheets == 1 else f"{self._title} ({self._sheets})"
        self._ws = self._wb.create_sheet(title[:31])
        self._ws.freeze_panes = "A2"
        self._ws.append([self._text_cell(c.name) for c in self.columns])
        self._sheet_rows = 1

    def _text_cell(self, value: str) -> Any:
        """A string cell: never a formula; quote-prefixed when a spreadsheet could run it."""
        from openpyxl.cell import WriteOnlyCell

        if self._illegal.search(value):  # control characters XML cannot carry
            value = self._illegal.sub("\ufffd", value)
        if len(value) > XLSX_MAX_CELL_CHARS:
            value = value[: XLSX_MAX_CELL_CHARS - 1] + "\u2026"
        if not (value and value[0] in DANGEROUS_FIRST_CHARS):
            return value
        cell = WriteOnlyCell(self._ws, value)
        cell.data_type = "s"
        cell.quotePrefix = True
        return cell

    def _cells(self, row: Row) -> list[Any]:
        cells: list[Any] = []
        for kind, v in zip(self._kinds, row):
            if v is None:
                cells.append(None)
            elif kind is Kind.TEXT:
                cells.append(self._text_cell(v))
            elif kind is Kind.UTC or kind is Kind.LOCAL:
                cells.append(v.replace(tzinfo=None))  # Excel has no time zones: wall time
            else:
                cells.append(v)
        return cells

    def write(self, rows: list[Row]) -> None:
        for row in rows:
            if self._sheet_rows >= XLSX_MAX_ROWS:
                self._new_sheet()
            self._ws.append(self._cells(row))
            self._sheet_rows += 1
        self.rows_written += len(rows)

    def close(self) -> None:
        self._wb.save(self._path)

    def abort(self) -> None:
        self._wb.close()  # removes the write-only sheets' temp files


# ---- Parquet ----------------------------------------------------------------------------------

#: Rows per Parquet row group (bounded memory: rows are kept as Arrow arrays until then).
PARQUET_ROW_GROUP = 64_000


def parquet_schema(columns: Sequence[Column]) -> Any:
    """The Arrow schema of a report (local times are text: one zone per row, not per column)."""
    import pyarrow as pa

    types = {Kind.TEXT: pa.string(), Kind.INT: pa.int64(), Kind.FLOAT: pa.float64(),
             Kind.BOOL: pa.bool_(), Kind.UTC: pa.timestamp("us", tz="UTC"),
             Kind.LOCAL: pa.string()}
    return pa.schema([pa.field(c.name, types[c.kind]) for c in columns])


class ParquetWriter(RowWriter):
    """pyarrow ParquetWriter, one row group per PARQUET_ROW_GROUP rows; typed values as-is."""

    def __init__(self, path: Path, columns: Sequence[Column]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        super().__init__(columns)
        self._pa = pa
        self._schema = parquet_schema(self.columns)
        self._local = [i for i, c in enumerate(self.columns) if c.kind is Kind.LOCAL]
        self._writer = pq.ParquetWriter(str(path), self._schema)
        self._pending: list[Any] = []
        self._pending_rows = 0

    def write(self, rows: list[Row]) -> None:
        if not rows:
            return
        pa = self._pa
        cols: list[list[Any]] = [list(c) for c in zip(*rows)]
        for i in self._local:
            cols[i] = [None if v is None else iso(v) for v in cols[i]]
        arrays = [pa.array(col, type=f.type) for col, f in zip(cols, self._schema)]
        self._pending.append(pa.RecordBatch.from_arrays(arrays, schema=self._schema))
        self._pending_rows += len(rows)
        self.rows_written += len(rows)
        if self._pending_rows >= PARQUET_ROW_GROUP:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            table = self._pa.Table.from_batches(self._pending, schema=self._schema)
            self._writer.write_table(table, row_group_size=max(self._pending_rows, 1))
            self._pending = []
            self._pending_rows = 0

    def close(self) -> None:
        self._flush()
        self._writer.close()

    def abort(self) -> None:
        self._pending = []
        with contextlib.suppress(Exception):  # already failing; the caller removes the file
            self._writer.close()
