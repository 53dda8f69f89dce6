""".xlsx files that lie about their size or unpack into huge cells: refused with one clear line,
or read without walking the declared-but-empty space. The files are built here (zipfile and
hand-written sheet XML), compressed, so they stay small on disk."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from collections.abc import Iterable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.importing.conftest import Runner, query, snapshot

NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
RELS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
CONTENT_TYPES = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">
<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>
<Default Extension="xml" ContentType="application/xml"/>
<Override PartName="/xl/workbook.xml"
 ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>
<Override PartName="/xl/worksheets/sheet1.xml"
 ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>
<Override PartName="/xl/sharedStrings.xml"
 ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/>
</Types>"""
ROOT_RELS = f"""<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">
<Relationship Id="rId1" Type="{RELS}/officeDocument" Target="xl/workbook.xml"/>
</Relationships>"""
WORKBOOK = f"""<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<workbook xmlns="{NS}" xmlns:r="{RELS}"><sheets>
<sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>"""
WORKBOOK_RELS = f"""<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">
<Relationship Id="rId1" Type="{RELS}/worksheet" Target="worksheets/sheet1.xml"/>
<Relationship Id="rId2" Type="{RELS}/sharedStrings" Target="sharedStrings.xml"/>
</Relationships>"""
CHUNK = 1 << 20


EMPTY_SST = (f'<sst xmlns="{NS}"/>',)


def build_xlsx(path: Path, sheet: Iterable[str], strings: Iterable[str] = EMPTY_SST) -> Path:
    """A minimal workbook whose sheet1.xml and sharedStrings.xml are the given pieces, streamed
    into the zip (DEFLATE, level 9) so that huge parts cost little memory and disk."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr("[Content_Types].xml", CONTENT_TYPES)
        zf.writestr("_rels/.rels", ROOT_RELS)
        zf.writestr("xl/workbook.xml", WORKBOOK)
        zf.writestr("xl/_rels/workbook.xml.rels", WORKBOOK_RELS)
        for name, pieces in (("xl/worksheets/sheet1.xml", sheet),
                             ("xl/sharedStrings.xml", strings)):
            with zf.open(name, "w", force_zip64=True) as fh:
                for piece in pieces:
                    fh.write(piece.encode())
    return path


def sheet_xml(rows: Iterable[str], dimension: str = "A1:B2") -> Iterable[str]:
    yield (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><worksheet xmlns="{NS}">'
           f'<dimension ref="{dimension}"/><sheetData>')
    yield from rows
    yield "</sheetData></worksheet>"


def inline(ref: str, text: str) -> str:
    return f'<c r="{ref}" t="inlineStr"><is><t>{text}</t></is></c>'


def header(n: int = 1) -> str:
    return f'<row r="{n}">{inline(f"A{n}", "phone")}{inline(f"B{n}", "name")}</row>'


def contact(n: int, phone: str = "(212) 736-5000", name: str = "x") -> str:
    return f'<row r="{n}">{inline(f"A{n}", phone)}{inline(f"B{n}", name)}</row>'


def huge_text(chars: int) -> Iterable[str]:
    for _ in range(chars // CHUNK):
        yield "x" * CHUNK
    yield "x" * (chars % CHUNK)


def refused(cli: Runner, url: str, campaign: str, path: Path) -> str:
    before = snapshot(url)
    code, out, err = cli(url, "contacts", "import", campaign, str(path))
    lines = [line for line in err.splitlines() if line.strip()]
    assert code != 0 and out == "", err
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert "internal error" not in err and "Traceback" not in err
    assert snapshot(url) == before
    return lines[0]


def test_declared_but_empty_space_costs_nothing(db_url: str, campaign: str, cli: Runner,
                                                tmp_path: Path) -> None:
    """4.9 KB claiming A1:XFD50000 with one contact on row 50000: read, not walked."""
    path = build_xlsx(tmp_path / "c.xlsx", sheet_xml([header(), contact(50_000)],
                                                     dimension="A1:XFD50000"))
    code, out, err = cli(db_url, "contacts", "import", campaign, str(path), "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert (summary["rows_read"], summary["accepted"]) == (1, 1)
    assert query(db_url, "SELECT source_row FROM contacts") == [(50_000,)]


def test_hostile_workbooks_are_refused(db_url: str, campaign: str, cli: Runner,
                                       tmp_path: Path) -> None:
    big = (4 << 20) + 10  # the bound: 4 MB a cell, as a CSV row
    cases = {
        # one inline cell of 4 MB + 10 characters (compressed: a few KB)
        "inline cell": (sheet_xml([header(), '<row r="2">', inline("A2", "2127365000"),
                                   '<c r="B2" t="inlineStr"><is><t>', *huge_text(big),
                                   "</t></is></c></row>"]), EMPTY_SST, "MB of text"),
        # the same in the shared strings table, referenced by a cell
        "shared string": (sheet_xml([header(), '<row r="2">', inline("A2", "2127365000"),
                                     '<c r="B2" t="s"><v>0</v></c></row>']),
                          [f'<sst xmlns="{NS}"><si><t>', *huge_text(big), "</t></si></sst>"],
                          "MB of text"),
        # rich text: many runs of 1 MB, each small, together too big
        "rich text runs": (sheet_xml([header(), '<row r="2">', inline("A2", "2127365000"),
                                      '<c r="B2" t="s"><v>0</v></c></row>']),
                           [f'<sst xmlns="{NS}"><si>',
                            *(f"<r><t>{'y' * CHUNK}</t></r>" for _ in range(5)),
                            "</si></sst>"], "MB of text"),
        # a row of many cells: 2,000 columns
        "too many columns": (sheet_xml([header(), '<row r="2">',
                                        *(inline(f"{_col(i)}2", "v") for i in range(1, 2001)),
                                        "</row>"]), EMPTY_SST, "right of column"),
        # a cell at Excel's last column on a data row
        "far column": (sheet_xml([header(), f'<row r="2">{inline("XFD2", "v")}</row>'],
                                 dimension="A1:XFD2"), EMPTY_SST, "right of column"),
        # a row below Excel's last row
        "far row": (sheet_xml([header(), contact(2_000_000)]), EMPTY_SST, "last row"),
        # entity tricks
        "dtd": ([('<?xml version="1.0"?><!DOCTYPE worksheet [<!ENTITY a "aaaa">]>'
                 f'<worksheet xmlns="{NS}"><sheetData>{header()}</sheetData></worksheet>')],
                EMPTY_SST, "<!DOCTYPE"),
        # no <dimension>: openpyxl's size probe reads the whole sheet; the guard is there too
        "no dimension": ([f'<worksheet xmlns="{NS}"><sheetData>', header(), '<row r="2">',
                          '<c r="A2" t="inlineStr"><is><t>', *huge_text(big),
                          "</t></is></c></row></sheetData></worksheet>"], EMPTY_SST,
                         "MB of text"),
        # a row of 17 MB of XML made of small cells
        "huge row": (sheet_xml([header(), '<row r="2">',
                                *(f'<c r="A2" t="inlineStr"><is><t>{"w" * 4000}</t></is></c>'
                                  for _ in range(4400)), "</row>"]), EMPTY_SST, "MB of XML"),
    }
    for name, (sheet, strings, fragment) in cases.items():
        path = build_xlsx(tmp_path / f"{name.replace(' ', '_')}.xlsx", sheet, strings)
        assert path.stat().st_size < 400_000, name
        line = refused(cli, db_url, campaign, path)
        assert fragment in line, (name, line)


def _col(n: int) -> str:
    letters = ""
    while n:
        n, rem = divmod(n - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


def test_many_rows_are_batched_by_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches are cut by text size as well as by rows: memory stays at about one batch."""
    from campaigns.importing import reader as rd
    from campaigns.importing import xlsx

    monkeypatch.setattr(xlsx, "BATCH_BYTES", 64 << 10)
    text = "z" * 1_000
    path = build_xlsx(tmp_path / "c.xlsx", sheet_xml(
        [header()] + [contact(i, f"212736{i:04d}", text) for i in range(2, 602)]))
    info = rd.inspect(path)
    with xlsx.XlsxReader(info) as reader:
        sizes = [b.table.num_rows for b in reader.batches()]
    assert sum(sizes) == 600 and len(sizes) >= 9 and max(sizes) <= 70


MEMORY_PROBE = """
import sys
from pathlib import Path
from campaigns.errors import ImportFailed
from campaigns.importing import reader as rd
from campaigns.importing.xlsx import XlsxReader
try:
    with XlsxReader(rd.inspect(Path(sys.argv[1]))) as r:
        for _ in r.batches():
            pass
except ImportFailed as exc:
    print("refused:", exc)
# VmHWM is this program's peak (ru_maxrss would carry the forking parent's over exec).
print([l.split()[1] for l in open("/proc/self/status") if l.startswith("VmHWM")][0])
"""


@pytest.mark.slow
def test_a_huge_cell_is_refused_without_loading_it(tmp_path: Path) -> None:
    """A 200 MB cell packed into a few hundred KB: refused, and the process never grows by
    anything like the cell (peak RSS, coarse)."""
    if not Path("/proc/self/status").exists():
        pytest.skip("needs /proc")
    path = build_xlsx(tmp_path / "c.xlsx", sheet_xml(
        [header(), '<row r="2">', '<c r="A2" t="inlineStr"><is><t>', *huge_text(200 << 20),
         "</t></is></c></row>"]))
    assert path.stat().st_size < 1_000_000
    done = subprocess.run([sys.executable, "-c", MEMORY_PROBE, str(path)], capture_output=True,
                          text=True, timeout=300, check=True)
    lines = done.stdout.splitlines()
    assert lines[0].startswith("refused:") and "MB of text" in lines[0], done.stdout
    peak_mb = int(lines[-1]) / 1024  # kilobytes on Linux
    assert peak_mb < 180, f"peak RSS {peak_mb:.0f} MB"  # the libraries alone: ~110 MB


def _guard_input(kind: str, over: bool) -> bytes:
    if kind == "rich":
        k = 8 if over else 3
        return (b"<sst><si>" + b"<r><t>" + b"y" * 30 + b"</t></r>" + (b"<r><t>" + b"y" * 30
                + b"</t></r>") * (k - 1) + b"</si><si><t>z</t></si></sst>")
    k = 25 if over else 8
    return (b'<sheetData><row r="1">' + b"<c><v>" + b"1" * 20 + b"</v></c>"
            + (b"<c><v>" + b"1" * 20 + b"</v></c>") * (k - 1) + b'</row><row r="2"/>'
            + b"</sheetData><mergeCells>" + b"<m/>" * 200 + b"</mergeCells>")


@pytest.mark.fast
@settings(max_examples=200, deadline=None, database=None)
@given(sizes=st.lists(st.integers(1, 40), min_size=1, max_size=30), over=st.booleans(),
       kind=st.sampled_from(["rich", "row"]), prefixed=st.booleans())
def test_the_xml_guard_counts_the_same_however_the_bytes_are_split(
        sizes: list[int], over: bool, kind: str, prefixed: bool) -> None:
    """Small bounds, random read sizes (tags split across blocks): refused exactly when over."""
    import io
    from unittest import mock

    from campaigns.errors import ImportFailed
    from campaigns.importing import xmlguard

    data = _guard_input(kind, over)
    if prefixed:
        for tag in (b"sst", b"si", b"r", b"t", b"sheetData", b"row", b"c", b"v"):
            data = data.replace(b"<" + tag + b">", b"<x:" + tag + b">").replace(
                b"</" + tag + b">", b"</x:" + tag + b">").replace(b"<" + tag + b" ",
                                                                    b"<x:" + tag + b" ")
    with mock.patch.multiple(xmlguard, MAX_TEXT_BYTES=100, MAX_STRING_BYTES=200,
                             MAX_ELEMENT_BYTES=400):
        guard = xmlguard.GuardedStream(io.BytesIO(data), "x.xlsx")
        got = b""
        try:
            i = 0
            while chunk := guard.read(sizes[i % len(sizes)]):
                got += chunk
                i += 1
        except ImportFailed:
            assert over
            return
    assert not over and got == data
