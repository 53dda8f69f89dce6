"""A byte-level guard on the XML parts of an .xlsx, applied while openpyxl reads them.

An XML parser builds a text node whole before anyone can look at it, so a cell that unpacks to
300 MB costs 300 MB (and more) before it can be refused. `GuardedStream` sits between the zip
member and the parser and watches the raw bytes as they pass, at C speed (`bytes.find`, one
regex scan per block), keeping nothing but counters:

* a stretch of bytes without a `<` is text (or an attribute value): at most `MAX_TEXT_BYTES`;
* a shared or inline string (`<si>`...`</si>`, `<is>`...`</is>`, rich-text runs added up): at
  most `MAX_STRING_BYTES` of XML;
* a row (`<row>`...`</row>`, or between two rows): at most `MAX_ELEMENT_BYTES` of XML;
* no DTD, entity declaration or CDATA section (Excel never writes them; they would defeat the
  counting or expand text).

Anything over is `ImportFailed` with one clear line, raised from inside the parser's read.
"""

from __future__ import annotations

import io
import re
import zipfile
from typing import IO, Any

from campaigns.errors import ImportFailed

#: Bytes of text without markup: a cell (the CSV path refuses rows over 4 MB).
MAX_TEXT_BYTES = 4 << 20
#: Bytes of XML of one string, rich-text runs and their markup included.
MAX_STRING_BYTES = (4 << 20) + (64 << 10)
#: Bytes of XML of one row (up to 1,024 cells of markup around 4 MB of text), or between rows.
MAX_ELEMENT_BYTES = 16 << 20
_FORBIDDEN = (b"<!DOCTYPE", b"<!ENTITY", b"<![CDATA[")
_TAIL = 16
#: Start or end tags of rows and strings, with an optional namespace prefix.
_BOUNDARY = re.compile(rb"<(/?)(?:[A-Za-z_][\w.-]*:)?(row|si|is|sheetData)(?=[\s>/])")


_PREFIXED = re.compile(rb"<(/?)[A-Za-z_][\w.-]*:(row|si|is|sheetData)(?=[\s>/])")
_ROW_TAGS = (b"<row ", b"<row>", b"</row>")
_SHEETDATA_END = (b"</sheetData>",)
_STRING_OPEN = (b"<si>", b"<si ", b"<is>", b"<is ")
_STRING_CLOSE = (b"</si>", b"</is>")


def _first_last(window: bytes, tags: tuple[bytes, ...], offset: int) -> tuple[int, int]:
    """Where the first and the last of `tags` begin in `window`, counting only tags that end
    after `offset` (the ones before were seen whole in the previous block); (-1, -1): none."""
    firsts, lasts = [], []
    for tag in tags:
        start = max(offset - len(tag) + 1, 0)
        first = window.find(tag, start)
        if first >= 0:
            firsts.append(first)
            lasts.append(window.rfind(tag, start))
    return (min(firsts), max(lasts)) if firsts else (-1, -1)


class GuardedStream(io.RawIOBase):
    """A read-only stream over `raw` that raises ImportFailed when the bounds are crossed."""

    def __init__(self, raw: IO[bytes], where: str) -> None:
        self._raw = raw
        self._where = where
        self._tail = b""
        self._text = 0  # bytes since the last "<"
        self._row: int | None = None  # bytes since the last row tag, within sheetData
        self._string: int | None = None  # bytes since the current string began, if in one

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._raw.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        if n:
            self._check(data)
        return n

    def close(self) -> None:
        self._raw.close()
        super().close()

    def _fail(self, why: str) -> None:
        raise ImportFailed(f"{self._where}: {why}; contact files are limited to "
                           f"{MAX_TEXT_BYTES >> 20} MB a cell and {MAX_ELEMENT_BYTES >> 20} MB "
                           "of XML a row")

    def _check(self, data: bytes) -> None:
        window = self._tail + data
        for pattern in _FORBIDDEN:
            if pattern in window:
                self._fail(f"it contains {pattern.decode()}, which Excel never writes")
        first, last = data.find(b"<"), data.rfind(b"<")
        if first < 0:
            self._text += len(data)
        else:
            if self._text + first > MAX_TEXT_BYTES:
                self._fail(f"a cell holds more than {MAX_TEXT_BYTES >> 20} MB of text")
            self._text = len(data) - last - 1
        if self._text > MAX_TEXT_BYTES:
            self._fail(f"a cell holds more than {MAX_TEXT_BYTES >> 20} MB of text")
        if _PREFIXED.search(window):
            self._boundaries_by_regex(window, data)
        else:
            self._boundaries(window, data)
        self._tail = window[-_TAIL:]

    def _boundaries(self, window: bytes, data: bytes) -> None:
        """Row and string boundaries of a block, from literal searches only (the usual case:
        tags without a namespace prefix). Within one block every distance is below the bounds,
        so only the first and the last boundary of each kind matter. A tag that began in the
        previous block's tail and ends in this one is counted here."""
        offset, n = len(self._tail), len(data)

        def rel(i: int) -> int:  # bytes of `data` before window position i
            return max(i - offset, 0)

        row_first, row_last = _first_last(window, _ROW_TAGS, offset)
        end_first, _ = _first_last(window, _SHEETDATA_END, offset)
        if self._row is not None:
            stops = [i for i in (row_first, end_first) if i >= 0]
            self._grow_row(rel(min(stops)) if stops else n)
        if row_last >= 0:
            self._row = 0
            self._grow_row(len(window) - row_last)
        if end_first > row_last:
            self._row = None
        _, open_last = _first_last(window, _STRING_OPEN, offset)
        close_first, close_last = _first_last(window, _STRING_CLOSE, offset)
        if self._string is not None:
            self._grow_string(rel(close_first) if close_first >= 0 else n)
        if open_last > close_last:
            self._string = 0
            self._grow_string(len(window) - open_last)
        elif close_last >= 0:
            self._string = None

    def _grow_row(self, n: int) -> None:
        assert self._row is not None
        self._row += n
        if self._row > MAX_ELEMENT_BYTES:
            self._fail(f"a row holds more than {MAX_ELEMENT_BYTES >> 20} MB of XML")

    def _grow_string(self, n: int) -> None:
        assert self._string is not None
        self._string += n
        if self._string > MAX_STRING_BYTES:
            self._fail(f"a cell holds more than {MAX_TEXT_BYTES >> 20} MB of text")

    def _boundaries_by_regex(self, window: bytes, data: bytes) -> None:
        """The same, tag by tag (prefixed tags such as `<x:row>`; rare)."""
        offset = len(self._tail)
        position = 0  # in `data`, where counting resumes
        for match in _BOUNDARY.finditer(window):
            if match.end() < offset:
                continue  # seen whole, with the character after it, in the previous block
            at = max(match.start() - offset, 0)
            self._count(at - position)
            position = at
            closing, name = match.group(1), match.group(2)
            if name == b"row":
                self._row = 0
            elif name == b"sheetData":
                self._row = None  # what follows the rows (merges, links...) is not a row
            else:
                self._string = None if closing else 0
        self._count(len(data) - position)

    def _count(self, n: int) -> None:
        if self._row is not None:
            self._row += n
            if self._row > MAX_ELEMENT_BYTES:
                self._fail(f"a row holds more than {MAX_ELEMENT_BYTES >> 20} MB of XML")
        if self._string is not None:
            self._string += n
            if self._string > MAX_STRING_BYTES:
                self._fail(f"a cell holds more than {MAX_TEXT_BYTES >> 20} MB of text")


#: Parts that are not XML (images, printer settings, VBA): read as they are.
_BINARY = (".bin", ".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".emf", ".wmf",
           ".wdp", ".svg")


class GuardedZip(zipfile.ZipFile):
    """A zip whose XML members are read through `GuardedStream` (openpyxl reads every part,
    the worksheet's dimension probe included, through `open`)."""

    where = "the workbook"

    def open(self, name: Any, mode: Any = "r", pwd: bytes | None = None, *,
             force_zip64: bool = False) -> Any:
        stream = super().open(name, mode, pwd, force_zip64=force_zip64)
        filename = name.filename if isinstance(name, zipfile.ZipInfo) else str(name)
        if mode == "r" and not filename.lower().endswith(_BINARY):
            return GuardedStream(stream, self.where)
        return stream
