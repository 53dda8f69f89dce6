"""Reading contact files in batches, every cell as text, with the row numbers a user sees.

CSV: any of `,` `;` tab `|` (sniffed from the header), UTF-8 with or without a BOM (UTF-16 with a
BOM too), or the encoding the user names. The whole file is checked to decode before anything is
read, so that a wrong encoding is one clear error up front. Parsing uses Arrow's streaming CSV
reader, which pandas itself uses for its `pyarrow` engine: it is about three times faster than the
pandas C parser here, keeps memory flat (one block at a time) and reports malformed rows with their
record number. XLSX: openpyxl in read-only (streaming) mode; formulas come back as their text.

Row numbers are spreadsheet rows: the header is row 1, the first data row is row 2, and a cell
with line breaks does not shift the rows after it.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import hashlib
import io
import os
import stat
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from campaigns.errors import ImportFailed

DELIMITERS = (",", ";", "\t", "|")
#: Bytes of CSV per batch handed to the pipeline.
BLOCK_SIZE = 4 << 20
#: Bytes Arrow parses at a time. Its streaming reader reads up to 32 of these ahead on a
#: background thread, so this bounds the read-ahead (32 MB); batches are then coalesced.
PARSE_BLOCK = 1 << 20
_SNIFF_BYTES = 64 << 10
_ZIP_MAGIC = b"PK\x03\x04"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


@dataclass(frozen=True)
class SourceInfo:
    path: Path
    kind: str  # "csv" | "xlsx"
    encoding: str
    delimiter: str
    sha256: str
    size: int
    #: Rough number of data rows, for the progress bar.
    approx_rows: int
    #: False when the bytes were checked and hold no NUL character.
    may_have_nul: bool = True
    #: (size, mtime_ns, inode, device) when inspected: the file must be the same at the end.
    stamp: tuple[int, int, int, int] = (0, 0, 0, 0)


@dataclass
class BadRow:
    """A row the parser could not split into the header's columns."""

    row: int
    fields: int
    text: str


@dataclass
class Batch:
    #: One string column per header column, named c0..cN-1; no nulls.
    table: pa.Table
    #: Spreadsheet row number of each row of `table`.
    rows: np.ndarray
    #: Malformed rows whose number falls at or before the last row of this batch.
    bad: list[BadRow] = field(default_factory=list)
    #: Rows absent from the file between the rows of this batch (XLSX gaps): blank rows.
    gap_rows: int = 0


def _human(path: Path) -> str:
    return str(path)


def inspect(path: Path, encoding: str | None = None) -> SourceInfo:
    """Identify a contact file and check that it can be read; ImportFailed says why not."""
    fh = open_input(path)
    with fh:
        st = os.fstat(fh.fileno())
        if stat.S_ISDIR(st.st_mode):
            raise ImportFailed(f"{_human(path)!r} is a directory, not a contact file")
        size, stamp = st.st_size, _stamp(st)
        head = _read(fh, path, _SNIFF_BYTES)
    if not head.strip(b"\r\n\t \xef\xbb\xbf"):
        raise ImportFailed(f"{_human(path)!r} is empty: it needs a header row (with a phone "
                           "column) and one row per contact")
    suffix = path.suffix.lower()
    if head.startswith(_OLE_MAGIC):
        raise ImportFailed(f"{_human(path)!r} is an old-style .xls or an encrypted workbook: save "
                           "it as .xlsx or CSV (UTF-8) and import that")
    if head.startswith(_ZIP_MAGIC):
        if not zipfile.is_zipfile(path):
            raise ImportFailed(f"{_human(path)!r} is not a readable .xlsx file (a damaged zip)")
        return SourceInfo(path, "xlsx", "", "", _sha256(path), size, 0, stamp=stamp)
    if suffix in (".xlsx", ".xlsm"):
        raise ImportFailed(f"{_human(path)!r} is not an Excel workbook (no .xlsx content): if "
                           "it is CSV text, rename it to .csv")
    if suffix == ".xls":
        raise ImportFailed(f"{_human(path)!r}: old-style .xls is not supported: save it as .xlsx "
                           "or CSV (UTF-8)")
    enc = encoding or _bom_encoding(head)
    if encoding is None and enc == "utf-8" and b"\x00" in head:
        raise ImportFailed(f"{_human(path)!r} does not look like a CSV or Excel file (it contains "
                           "binary data); export the list as CSV or .xlsx")
    check_text_encoding(enc)
    sha, lines, nul = _check_decodes(path, enc, explicit=encoding is not None)
    text_head = codecs.getincrementaldecoder(enc)(errors="replace").decode(head, final=False)
    delimiter = sniff_delimiter(text_head.lstrip("\ufeff"))
    utf8 = codecs.lookup(enc).name == "utf-8"
    return SourceInfo(path, "csv", enc, delimiter, sha, size, max(lines - 1, 0),
                      may_have_nul=nul or not utf8, stamp=stamp)


def open_input(path: Path) -> IO[bytes]:
    """The contact file opened for reading; ImportFailed (one clear line) when it cannot be."""
    try:
        return path.open("rb")
    except FileNotFoundError:
        raise ImportFailed(f"file {_human(path)!r} does not exist (was it deleted or moved?)"
                           ) from None
    except IsADirectoryError:
        raise ImportFailed(f"{_human(path)!r} is a directory, not a contact file") from None
    except OSError as exc:
        raise ImportFailed(f"cannot read {_human(path)!r}: {exc.strerror or exc}") from None


def _read(fh: IO[bytes], path: Path, n: int) -> bytes:
    try:
        return fh.read(n)
    except IsADirectoryError:
        raise ImportFailed(f"{_human(path)!r} is a directory, not a contact file") from None
    except OSError as exc:
        raise ImportFailed(f"cannot read {_human(path)!r}: {exc.strerror or exc}") from None


def _stamp(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev)


def check_unchanged(info: SourceInfo, read_sha256: str | None) -> None:
    """ImportFailed when the file is not, at the end of the import, the one inspected at its
    start: deleted, replaced, truncated, appended to or rewritten (size, time, inode), or when
    the bytes actually read (`read_sha256`; None: read them again now) hash differently."""
    changed = (f"{_human(info.path)!r} changed while it was being imported; nothing was "
               "imported: import it again once it is complete")
    try:
        now = _stamp(os.stat(info.path))
    except FileNotFoundError:
        raise ImportFailed(f"{_human(info.path)!r} was deleted or moved while it was being "
                           "imported; nothing was imported") from None
    except OSError as exc:
        raise ImportFailed(f"cannot read {_human(info.path)!r}: {exc.strerror or exc}") from None
    if now != info.stamp:
        raise ImportFailed(changed)
    if read_sha256 is None:
        read_sha256 = _sha256(info.path)
    if read_sha256 != info.sha256:
        raise ImportFailed(changed)


class HashingReader(io.RawIOBase):
    """A binary file that hashes (SHA-256) every byte read through it."""

    def __init__(self, raw: IO[bytes], path: Path) -> None:
        self._raw = raw
        self._path = path
        self.digest = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = _read(self._raw, self._path, len(buffer))
        n = len(data)
        buffer[:n] = data
        self.digest.update(data)
        return n

    def close(self) -> None:
        self._raw.close()
        super().close()


def check_text_encoding(encoding: str) -> None:
    """ImportFailed unless `encoding` names a text codec (bytes to str): rot13, base64, zlib,
    hex and the like are codecs Python knows but that do not decode a file into text."""
    try:
        info = codecs.lookup(encoding)
    except (LookupError, ValueError, TypeError):
        raise ImportFailed(f"unknown encoding {encoding!r}: use a name like utf-8, latin-1, "
                           "cp1252 or utf-16") from None
    if not getattr(info, "_is_text_encoding", True):
        raise ImportFailed(f"{encoding!r} is not a text encoding (it is a {info.name} "
                           "transform): use a name like utf-8, latin-1, cp1252 or utf-16")


def _bom_encoding(head: bytes) -> str:
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8"  # Arrow drops the UTF-8 BOM itself
    # UTF-32's little-endian BOM begins with UTF-16's (FF FE): test UTF-32 first.
    if head.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        return "utf-32"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    return "utf-8"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open_input(path) as fh:
        for block in iter(lambda: _read(fh, path, BLOCK_SIZE), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_decodes(path: Path, encoding: str, *, explicit: bool) -> tuple[str, int, bool]:
    """Decode the whole file (streaming) so that a wrong encoding fails before any work; returns
    the SHA-256, the number of line breaks and whether a NUL byte occurs."""
    digest = hashlib.sha256()
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    lines = 0
    offset = 0
    nul = False
    with open_input(path) as fh:
        for block in iter(lambda: _read(fh, path, BLOCK_SIZE), b""):
            digest.update(block)
            try:
                decoder.decode(block)
            except UnicodeDecodeError as exc:
                _decode_failed(path, encoding, explicit, fh, offset + exc.start, lines, block,
                               exc)
            lines += block.count(b"\n")
            nul = nul or b"\x00" in block
            offset += len(block)
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError as exc:
            raise ImportFailed(f"{_human(path)!r} ends in the middle of a character: it is not "
                               f"valid {encoding}") from exc
    return digest.hexdigest(), lines, nul


def _decode_failed(path: Path, encoding: str, explicit: bool, fh: Any, position: int,
                   lines_before: int, block: bytes, exc: UnicodeDecodeError) -> None:
    line = lines_before + block[:max(exc.start, 0)].count(b"\n") + 1
    bad = block[exc.start:exc.start + 1].hex()
    hint = ("check the encoding name" if explicit else
            "pass --encoding with the file's encoding, e.g. --encoding latin-1 or "
            "--encoding cp1252 (Excel on Windows), or save it as CSV UTF-8")
    raise ImportFailed(f"{_human(path)!r} is not valid {encoding}: byte 0x{bad} at line {line} "
                       f"(offset {position}) cannot be decoded; {hint}") from None


def sniff_delimiter(text: str) -> str:
    """The delimiter that splits the header into the most fields (comma on a tie)."""
    best, best_fields = ",", 1
    for delim in DELIMITERS:
        try:
            first = next(csv.reader(io.StringIO(text, newline=""), delimiter=delim), [])
        except csv.Error:
            continue
        if len(first) > best_fields:
            best, best_fields = delim, len(first)
    return best


def read_header(info: SourceInfo) -> list[str]:
    """The header row's cells, as written."""
    if info.kind == "xlsx":
        from campaigns.importing.xlsx import XlsxReader

        with XlsxReader(info) as reader:
            return reader.header
    with open_input(info.path) as fh:
        head = _read(fh, info.path, _SNIFF_BYTES * 16)
    text = codecs.getincrementaldecoder(info.encoding)(errors="replace").decode(head)
    text = text.lstrip("\ufeff")
    try:
        return next(csv.reader(io.StringIO(text, newline=""), delimiter=info.delimiter), [])
    except csv.Error as exc:
        raise ImportFailed(f"cannot read the header row of {_human(info.path)!r}: {exc}") from None


class CsvReader:
    """Batches of a CSV file. `header` is the first row, as Arrow parsed it."""

    def __init__(self, info: SourceInfo, width: int, block_size: int = BLOCK_SIZE) -> None:
        self.info = info
        self.width = width
        self.block_size = block_size
        self.names = [f"c{i}" for i in range(width)]
        self._bad: list[BadRow] = []
        self._next_row = 1  # the header
        self.header: list[str] = []
        #: SHA-256 of the bytes read, once every batch has been read.
        self.sha256: str | None = None

    def _on_invalid(self, row: Any) -> str:
        number = row.number if row.number is not None else -1
        self._bad.append(BadRow(number, row.actual_columns, row.text))
        return "skip"

    def batches(self) -> Iterator[Batch]:
        enc = self.info.encoding
        read_opts = pacsv.ReadOptions(
            column_names=self.names, block_size=min(self.block_size, PARSE_BLOCK),
            use_threads=False,
            encoding="utf8" if enc.replace("-", "").lower() in ("utf8", "utf8sig") else enc)
        parse_opts = pacsv.ParseOptions(delimiter=self.info.delimiter, newlines_in_values=True,
                                        ignore_empty_lines=False,
                                        invalid_row_handler=self._on_invalid)
        convert_opts = pacsv.ConvertOptions(
            column_types={n: pa.string() for n in self.names}, strings_can_be_null=False,
            quoted_strings_can_be_null=False)
        source = HashingReader(open_input(self.info.path), self.info.path)
        try:
            reader = pacsv.open_csv(source, read_options=read_opts,
                                    parse_options=parse_opts, convert_options=convert_opts)
            first = True
            for table in self._coalesced(reader):
                if first:
                    first = False
                    if any(b.row == 1 for b in self._bad):
                        raise ImportFailed(f"cannot split the header row of "
                                           f"{_human(self.info.path)!r} into columns")
                    self.header = [table.column(i)[0].as_py() for i in range(self.width)]
                    table = table.slice(1)
                yield self._number(table)
            if first:
                raise ImportFailed(f"{_human(self.info.path)!r} is empty: it needs a header row")
            self.sha256 = source.digest.hexdigest()
            if self._bad:
                yield Batch(pa.table({n: pa.array([], pa.string()) for n in self.names}),
                            np.zeros(0, np.int64), self._take_bad(None))
        except pa.ArrowInvalid as exc:
            raise ImportFailed(_arrow_message(self.info.path, exc, self.block_size)) from None
        except UnicodeDecodeError as exc:  # the file changed after inspect() checked it
            raise ImportFailed(f"{_human(self.info.path)!r}: {exc}") from None
        finally:
            source.close()

    def _coalesced(self, reader: Any) -> Iterator[pa.Table]:
        """Arrow's small record batches, joined into tables of about `block_size` bytes. The
        first tables are smaller (a quarter of it, then half): the first batch waits for the
        phone normaliser's one-off set-up, and a smaller one reaches the database sooner."""
        pending: list[pa.RecordBatch] = []
        size = 0
        target = max(self.block_size // 4, 1)
        for record_batch in reader:
            pending.append(record_batch)
            size += record_batch.nbytes
            if size >= target:
                yield pa.Table.from_batches(pending).combine_chunks()
                pending, size = [], 0
                target = min(2 * target, self.block_size)
        if pending:
            yield pa.Table.from_batches(pending).combine_chunks()

    def _take_bad(self, upto: int | None) -> list[BadRow]:
        if upto is None:
            taken, self._bad = self._bad, []
        else:
            taken = [b for b in self._bad if b.row <= upto]
            self._bad = [b for b in self._bad if b.row > upto]
        return taken

    def _number(self, table: pa.Table) -> Batch:
        """Row numbers for the rows of `table`: the next numbers not taken by malformed rows."""
        m = table.num_rows
        skip = {b.row for b in self._bad if b.row > self._next_row}
        out = np.empty(m, np.int64)
        filled = 0
        cur = self._next_row + 1
        while filled < m:
            want = m - filled
            cand = np.arange(cur, cur + want + len(skip), dtype=np.int64)
            if skip:
                cand = cand[~np.isin(cand, np.fromiter(skip, np.int64))]
            cand = cand[:want]
            out[filled:filled + len(cand)] = cand
            filled += len(cand)
            cur = int(cand[-1]) + 1 if len(cand) else cur + want + len(skip)
        if m:
            self._next_row = int(out[-1])
        return Batch(table, out, self._take_bad(self._next_row if m else None))


def _arrow_message(path: Path, exc: Exception, block_size: int) -> str:
    text = str(exc)
    if "straddling" in text or "block" in text.lower():
        return (f"{_human(path)!r}: a row is longer than {block_size >> 10} KB (an unclosed "
                "quote makes the rest of the file one cell?): check the quoting")
    return f"cannot read {_human(path)!r} as CSV: {text.splitlines()[0] if text else exc}"


def cell_text(value: Any) -> str:
    """An Excel cell as the text a user sees (numbers without a trailing .0)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e16:
            return str(int(value))
        return repr(value)
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    return str(value)
