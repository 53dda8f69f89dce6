"""Reading the first worksheet of an .xlsx workbook in bounded batches.

An .xlsx file is a zip of XML parts; a few KB of it can claim a sheet of 16,384 columns by a
million rows, or unpack into a 300 MB cell. openpyxl (read-only mode) parses the parts, but it
builds every text node whole, loads the shared-strings table whole, and its `iter_rows` fills the
declared-but-empty space cell by cell. So:

* every part's declared unpacked size is checked first (`MAX_PART_BYTES` for the small parts,
  `MAX_SHARED_STRINGS_BYTES` for the shared strings table);
* every XML part reaches openpyxl through `xmlguard.GuardedStream`, which refuses, from the raw
  bytes and before the parser builds anything, a cell of more than 4 MB of text (the CSV path's
  row bound), a row of more than 16 MB of XML, DTDs and CDATA;
* rows are read with openpyxl's sheet parser directly: only the rows and cells the file really
  contains (a gap of a million declared rows costs nothing); a cell right of column
  `MAX_COLUMNS`, a row with more cells than that, or a row below Excel's last row is refused;
* batches are cut at `BATCH_BYTES` of text or `BATCH_ROWS` rows, so memory stays at about one
  batch (plus the shared strings table, which cells refer to from anywhere).
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from typing import Any, Self, cast

import numpy as np
import pyarrow as pa

from campaigns.errors import ImportFailed
from campaigns.importing.reader import BadRow, Batch, SourceInfo, cell_text
from campaigns.importing.xmlguard import GuardedZip

#: Columns a contact file may use (a cell further right is refused).
MAX_COLUMNS = 1_024
#: Excel's last row.
MAX_ROW = 1_048_576
#: Characters of one row's cells: the CSV path refuses rows over 4 MB.
MAX_ROW_CHARS = 4 << 20
#: Unpacked bytes of the shared strings table (all text cells of the workbook, deduplicated).
MAX_SHARED_STRINGS_BYTES = 512 << 20
#: Unpacked bytes of any other part but worksheets (workbook, styles, relationships, theme...).
MAX_PART_BYTES = 32 << 20
#: A batch is handed over at this much cell text, or this many rows.
BATCH_BYTES = 4 << 20
BATCH_ROWS = 20_000


def _check_sizes(archive: zipfile.ZipFile, where: str, strings_part: str | None, *,
                 strict: bool = True) -> None:
    """Declared unpacked sizes: worksheets are bounded by the guard as they are read; the shared
    strings part may be big (`strict=False`: not known yet, so no part may exceed its bound)."""
    for item in archive.infolist():
        name = item.filename
        if name.startswith("xl/worksheets/") and not name.startswith("xl/worksheets/_rels/"):
            continue
        big = name == strings_part or not strict
        limit = MAX_SHARED_STRINGS_BYTES if big else MAX_PART_BYTES
        if item.file_size > limit:
            raise ImportFailed(f"{where}: its part {name} unpacks to {item.file_size:,} bytes "
                               f"(at most {limit >> 20} MB): not a contact list?")


def _bounded_reader(info: SourceInfo) -> Any:
    """openpyxl's ExcelReader (read-only) on a guarded zip, its part sizes checked first."""
    from openpyxl.reader.excel import ExcelReader
    from openpyxl.xml.constants import SHARED_STRINGS

    where = f"{str(info.path)!r}"

    class BoundedReader(ExcelReader):
        def __init__(self) -> None:
            super().__init__(info.path, read_only=True, data_only=False)
            self.archive.close()
            guarded = GuardedZip(info.path)
            guarded.where = where
            self.archive: zipfile.ZipFile = guarded
            _check_sizes(guarded, where, None, strict=False)

        def read_strings(self) -> None:
            ct = self.package.find(SHARED_STRINGS)
            _check_sizes(self.archive, where, ct.PartName[1:] if ct is not None else None)
            super().read_strings()

    return BoundedReader()


def _check_row(where: str, idx: int, cells: list[dict[str, Any]]) -> None:
    if idx > MAX_ROW:
        raise ImportFailed(f"{where}: row {idx:,} is below Excel's last row ({MAX_ROW:,})")
    if len(cells) > MAX_COLUMNS or any(
            c["column"] > MAX_COLUMNS and c["value"] not in (None, "") for c in cells):
        raise ImportFailed(f"{where}: row {idx:,} has cells right of column {MAX_COLUMNS:,}; "
                           f"contact files are limited to {MAX_COLUMNS:,} columns")


class XlsxReader:
    """Batches of the first worksheet of an .xlsx workbook, streamed and bounded."""

    def __init__(self, info: SourceInfo) -> None:
        from openpyxl.utils.exceptions import InvalidFileException

        self.info = info
        where = f"{str(info.path)!r}"
        self._wb: Any = None
        self._archive: zipfile.ZipFile | None = None
        self._rows: Iterator[tuple[int, list[dict[str, Any]]]] = iter(())
        try:
            reader = _bounded_reader(info)
            self._archive = cast(zipfile.ZipFile, reader.archive)
            reader.read()
            self._wb = reader.wb
            if not self._wb.worksheets:
                raise ImportFailed(f"{where} has no worksheet")
            ws = self._wb.worksheets[0]
            self._rows = self._parse(ws)
            self._row = 0
            self.header: list[str] = []
            self.blank_before = 0
            for idx, cells in self._rows:
                _check_row(where, idx, cells)
                texts = self._dense(cells, MAX_COLUMNS)
                if any(t.strip() for t in texts):
                    while texts and not texts[-1].strip():
                        texts.pop()
                    self.header = texts
                    self._row = idx
                    break
        except ImportFailed:
            self.close()
            raise
        except (InvalidFileException, zipfile.BadZipFile, KeyError, ValueError, OSError,
                EOFError) as exc:
            self.close()
            raise ImportFailed(f"cannot read {where} as an Excel workbook: "
                               f"{str(exc).splitlines()[0] if str(exc) else exc!r}") from None
        if not self.header:
            self.close()
            raise ImportFailed(f"{where} is empty: its first sheet has no rows")
        self.width = len(self.header)
        self.approx_rows = max(min(ws.max_row or 0, MAX_ROW) - self._row, 0)

    def _parse(self, ws: Any) -> Iterator[tuple[int, list[dict[str, Any]]]]:
        from openpyxl.worksheet._reader import WorkSheetParser

        wb = self._wb
        with ws._get_source() as src:
            parser = WorkSheetParser(src, ws._shared_strings, data_only=False, epoch=wb.epoch,
                                     date_formats=wb._date_formats,
                                     timedelta_formats=wb._timedelta_formats)
            yield from parser.parse()

    @staticmethod
    def _dense(cells: list[dict[str, Any]], width: int) -> list[str]:
        """The row's texts in columns 1..width (only as far as its last cell)."""
        last = min(max((c["column"] for c in cells), default=0), width)
        texts = [""] * last
        for cell in cells:
            col = cell["column"]
            if 1 <= col <= last:
                texts[col - 1] = cell_text(cell["value"])
        return texts

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        close = getattr(self._rows, "close", None)
        if close is not None:
            close()
        if self._wb is not None:
            self._wb.close()
        if self._archive is not None:
            self._archive.close()

    def batches(self) -> Iterator[Batch]:
        width = self.width
        cols: list[list[str]] = [[] for _ in range(width)]
        numbers: list[int] = []
        bad: list[BadRow] = []
        size = gaps = 0
        last = self._row
        where = f"{str(self.info.path)!r}"
        for idx, cells in self._rows:
            _check_row(where, idx, cells)
            gaps += max(idx - last - 1, 0)  # rows the file leaves out: blank, at no cost
            last = idx
            texts = [""] * width
            beyond: dict[int, str] = {}
            chars = 0
            for cell in cells:
                text = cell_text(cell["value"])
                if not text:
                    continue
                chars += len(text)
                if chars > MAX_ROW_CHARS:
                    raise ImportFailed(f"{where}: row {idx} holds more than "
                                       f"{MAX_ROW_CHARS >> 20} MB of text")
                col = cell["column"]
                if 1 <= col <= width:
                    texts[col - 1] = text
                elif col > width and text.strip():
                    beyond[col] = text
            size += chars
            if beyond:
                filled = max(beyond)
                row = texts + [beyond.get(c, "") for c in range(width + 1, filled + 1)]
                bad.append(BadRow(idx, filled, ",".join(row)))
            else:
                for col_values, text in zip(cols, texts):
                    col_values.append(text)
                numbers.append(idx)
            if len(numbers) >= BATCH_ROWS or size >= BATCH_BYTES:
                yield self._batch(cols, numbers, bad, gaps)
                cols = [[] for _ in range(width)]
                numbers, bad, size, gaps = [], [], 0, 0
        if numbers or bad or gaps:
            yield self._batch(cols, numbers, bad, gaps)

    @staticmethod
    def _batch(cols: list[list[str]], numbers: list[int], bad: list[BadRow],
               gaps: int) -> Batch:
        table = pa.table({f"c{i}": pa.array(c, pa.string()) for i, c in enumerate(cols)})
        return Batch(table, np.array(numbers, np.int64), bad, gaps)
