"""Reading the first worksheet of an .xlsx workbook in bounded batches.

An .xlsx file is a zip of XML parts; a few KB of it can claim a sheet of 16,384 columns by a
million rows, or unpack into a 300 MB cell. openpyxl (read-only mode) parses the parts, but it
builds every text node whole, loads the shared-strings table whole, and its `iter_rows` fills the
declared-but-empty space cell by cell. So, before openpyxl sees a part:

* every part's declared unpacked size is checked (`MAX_PART_BYTES` for the small parts,
  `MAX_SHARED_STRINGS_BYTES` for the shared strings table);
* the shared strings and the worksheet are scanned once with expat (constant memory: text is
  counted, never kept): a cell's text may be at most `MAX_CELL_CHARS` (the CSV path's 4 MB row
  bound), a row's text at most `MAX_ROW_CHARS`, a cell may not lie right of column
  `MAX_COLUMNS` nor below Excel's last row; DTDs (entity tricks) are refused.

Then rows are read with openpyxl's sheet parser directly: only the rows and cells the file really
contains (a gap of a million declared rows costs nothing), and batches are cut at
`BATCH_BYTES` of text or `BATCH_ROWS` rows, so memory stays at about one batch.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from typing import IO, Any, Self
from xml.parsers import expat

import numpy as np
import pyarrow as pa

from campaigns.errors import ImportFailed
from campaigns.importing.reader import BadRow, Batch, SourceInfo, cell_text

#: Columns a contact file may use (a cell further right is refused).
MAX_COLUMNS = 1_024
#: Excel's last row.
MAX_ROW = 1_048_576
#: Characters of one cell, and of one row: the CSV path refuses rows over 4 MB.
MAX_CELL_CHARS = 4 << 20
MAX_ROW_CHARS = 4 << 20
#: Unpacked bytes of the shared strings table (all text cells of the workbook, deduplicated).
MAX_SHARED_STRINGS_BYTES = 512 << 20
#: Unpacked bytes of any other part but worksheets (workbook, styles, relationships, theme...).
MAX_PART_BYTES = 32 << 20
#: A batch is handed over at this much cell text, or this many rows.
BATCH_BYTES = 4 << 20
BATCH_ROWS = 20_000
_READ = 1 << 20


def _column_number(ref: str) -> int:
    n = 0
    for ch in ref:
        if "A" <= ch <= "Z":
            n = n * 26 + ord(ch) - 64
        elif "a" <= ch <= "z":
            n = n * 26 + ord(ch) - 96
        else:
            break
        if n > MAX_COLUMNS:
            break
    return n


class _Scan:
    """One expat pass over a part: counts text, checks the bounds, keeps nothing."""

    def __init__(self, where: str, sheet: bool) -> None:
        self.where = where
        self.sheet = sheet
        self.row = 0
        self.col = 0
        self.text = 0  # characters of the current element's text
        self.string = 0  # of the current <si>/<is> (rich text has several <t>)
        self.row_chars = 0

    def fail(self, why: str) -> None:
        raise ImportFailed(f"{self.where}: {why}; contact files are limited to {MAX_COLUMNS:,} "
                           f"columns, {MAX_CELL_CHARS >> 20} MB a cell and "
                           f"{MAX_ROW_CHARS >> 20} MB a row")

    def start(self, name: str, attrs: dict[str, str]) -> None:
        local = name.rpartition("|")[2]
        self.text = 0
        if local in ("si", "is"):
            self.string = 0
        if not self.sheet:
            return
        if local == "row":
            r = attrs.get("r", "")
            self.row = int(r) if r.isdigit() and len(r) < 9 else self.row + 1
            if self.row > MAX_ROW:
                self.fail(f"row {r or self.row} is below Excel's last row ({MAX_ROW:,})")
            self.col = 0
            self.row_chars = 0
        elif local == "c":
            ref = attrs.get("r")
            self.col = _column_number(ref) if ref else self.col + 1
            if self.col > MAX_COLUMNS:
                self.fail(f"row {self.row} has a cell ({ref or 'column ' + str(self.col)}) "
                          f"right of column {MAX_COLUMNS:,}")

    def chars(self, data: str) -> None:
        n = len(data)
        self.text += n
        self.string += n
        self.row_chars += n
        if self.text > MAX_CELL_CHARS or self.string > MAX_CELL_CHARS:
            self.fail(f"a cell{f' in row {self.row}' if self.sheet else ''} holds more than "
                      f"{MAX_CELL_CHARS >> 20} MB of text")
        if self.sheet and self.row_chars > MAX_ROW_CHARS:
            self.fail(f"row {self.row} holds more than {MAX_ROW_CHARS >> 20} MB of text")

    def doctype(self, *_: Any) -> None:
        self.fail("it declares a DTD, which Excel never writes")


def scan_part(src: IO[bytes], where: str, *, sheet: bool) -> None:
    """Check a worksheet (`sheet=True`) or shared-strings part against the bounds, streaming."""
    scan = _Scan(where, sheet)
    parser = expat.ParserCreate(namespace_separator="|")
    parser.buffer_text = True
    parser.buffer_size = 1 << 16
    parser.StartElementHandler = scan.start
    parser.CharacterDataHandler = scan.chars
    parser.StartDoctypeDeclHandler = scan.doctype
    parser.EntityDeclHandler = scan.doctype
    try:
        for block in iter(lambda: src.read(_READ), b""):
            parser.Parse(block, False)
        parser.Parse(b"", True)
    except expat.ExpatError as exc:
        raise ImportFailed(f"{where}: not valid XML ({exc})") from None


def _check_sizes(archive: zipfile.ZipFile, where: str, strings_part: str | None) -> None:
    for item in archive.infolist():
        name = item.filename
        if name.startswith("xl/worksheets/") and not name.startswith("xl/worksheets/_rels/"):
            continue  # scanned before it is read
        limit = MAX_SHARED_STRINGS_BYTES if name == strings_part else MAX_PART_BYTES
        if item.file_size > limit:
            raise ImportFailed(f"{where}: its part {name} unpacks to {item.file_size:,} bytes "
                               f"(at most {limit >> 20} MB): not a contact list?")


def _bounded_reader(info: SourceInfo) -> Any:
    """openpyxl's ExcelReader (read-only) whose shared strings are checked before they load."""
    from openpyxl.reader.excel import ExcelReader
    from openpyxl.xml.constants import ARC_CONTENT_TYPES, SHARED_STRINGS

    where = f"{str(info.path)!r}"

    class BoundedReader(ExcelReader):
        def read_manifest(self) -> None:
            if ARC_CONTENT_TYPES in self.valid_files:
                size = self.archive.getinfo(ARC_CONTENT_TYPES).file_size
                if size > MAX_PART_BYTES:
                    raise ImportFailed(f"{where}: its part {ARC_CONTENT_TYPES} unpacks to "
                                       f"{size:,} bytes (at most {MAX_PART_BYTES >> 20} MB)")
            super().read_manifest()

        def read_strings(self) -> None:
            ct = self.package.find(SHARED_STRINGS)
            part = ct.PartName[1:] if ct is not None else None
            _check_sizes(self.archive, where, part)
            if part is not None:
                with self.archive.open(part) as src:
                    scan_part(src, f"{where} (shared strings)", sheet=False)
            super().read_strings()

    return BoundedReader(info.path, read_only=True, data_only=False)


class XlsxReader:
    """Batches of the first worksheet of an .xlsx workbook, streamed and bounded."""

    def __init__(self, info: SourceInfo) -> None:
        from openpyxl.utils.exceptions import InvalidFileException

        self.info = info
        where = f"{str(info.path)!r}"
        self._wb: Any = None
        self._rows: Iterator[tuple[int, list[dict[str, Any]]]] = iter(())
        try:
            reader = _bounded_reader(info)
            reader.read()
            self._wb = reader.wb
            if not self._wb.worksheets:
                raise ImportFailed(f"{where} has no worksheet")
            ws = self._wb.worksheets[0]
            with ws._get_source() as src:
                scan_part(src, where, sheet=True)
            self._rows = self._parse(ws)
            self._row = 0
            self.header: list[str] = []
            self.blank_before = 0
            for idx, cells in self._rows:
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

    def batches(self) -> Iterator[Batch]:
        width = self.width
        cols: list[list[str]] = [[] for _ in range(width)]
        numbers: list[int] = []
        bad: list[BadRow] = []
        size = gaps = 0
        last = self._row
        where = f"{str(self.info.path)!r}"
        for idx, cells in self._rows:
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
