"""Formula payloads are neutralised in CSV and XLSX; JSONL and Parquet carry values as-is."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from campaigns.db.engine import create_engine, session_factory
from campaigns.db.models import Contact, ContactImport
from campaigns.reports import write_report
from campaigns.reports.safety import csv_text, is_dangerous
from tests.reports import data
from tests.reports.readback import read

DANGEROUS = ("=", "+", "-", "@", "\t", "\r")


@pytest.mark.parametrize("value", [*data.FORMULAS, "+14155550100", "\uff1dcmd()"])
def test_guard_rule(value: str) -> None:
    assert is_dangerous(value)
    assert csv_text(value) == "'" + value


@pytest.mark.parametrize("value", ["", "plain", "'quoted", " =1", "1-2", "a@b.c", "日本"])
def test_harmless_values_untouched(value: str) -> None:
    assert not is_dangerous(value) and csv_text(value) == value


async def _with_evil_header(url: str) -> data.Built:
    built = await data.build(url)
    engine = create_engine(url)
    async with session_factory(engine)() as s, s.begin():
        imp = ContactImport(campaign_id=built.campaign_id, file_name="evil.csv",
                            columns=["Tel", "=evil()"], phone_column="Tel")
        s.add(imp)
        await s.flush()
        s.add(Contact(campaign_id=built.campaign_id, import_id=imp.id, phone_e164="+14155550197",
                      phone_raw="+1 415 555 0197", custom_fields={"=evil()": "@x"},
                      timezones=[], status="queued"))
    await engine.dispose()
    return built


async def test_csv_neutralises_formulas(db_url: str, tmp_path: Path) -> None:
    await _with_evil_header(db_url)
    path = tmp_path / "r.csv"
    await write_report(db_url, "spring", path)
    header, rows = read("csv", path)
    cells = header + [v for r in rows for v in r.values()]
    assert not [c for c in cells if c[:1] in DANGEROUS], "a cell a spreadsheet would run"
    text = path.read_text(encoding="utf-8")
    for payload in data.FORMULAS[:4]:
        assert ("'" + payload) in text.replace('""', '"')
    assert "'=evil()" in header
    assert rows[0]["phone_e164"] == "'+14155550101"  # E.164 is protected too
    assert rows[-1]["'=evil()"] == "'@x"
    # JSONL (typed, for programs) keeps values as they are
    await write_report(db_url, "spring", tmp_path / "r.jsonl")
    _, jrows = read("jsonl", tmp_path / "r.jsonl")
    assert jrows[0]["Notes"] == data.FORMULAS[0] and jrows[0]["phone_e164"] == "+14155550101"


async def test_xlsx_writes_text_never_formulas(db_url: str, tmp_path: Path) -> None:
    from openpyxl import load_workbook

    await _with_evil_header(db_url)
    path = tmp_path / "r.xlsx"
    await write_report(db_url, "spring", path)
    with zipfile.ZipFile(path) as z:
        sheets = [n for n in z.namelist() if n.startswith("xl/worksheets/")]
        xml = "".join(z.read(n).decode("utf-8") for n in sheets)
    assert "<f>" not in xml and "<f " not in xml, "a formula element in the sheet"
    ws = load_workbook(path).worksheets[0]
    risky = [c for row in ws.iter_rows() for c in row
             if isinstance(c.value, str) and c.value[:1] in DANGEROUS + ("\n",)]
    assert len(risky) >= 10
    for cell in risky:
        assert cell.data_type == "s", (cell.coordinate, cell.value)
        assert cell.quotePrefix, (cell.coordinate, cell.value)
    values = {c.value for c in risky}
    assert {*data.FORMULAS[:4], "=evil()", "@x", "+14155550101"} <= values
    # ordinary text is not marked
    assert not ws["B2"].quotePrefix and ws["B2"].value == "Ann"
