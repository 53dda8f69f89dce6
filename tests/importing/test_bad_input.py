"""Bad files and bad requests: one clear error (or a reject reason), and nothing changes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.importing.conftest import Runner, import_json, query, read_rejects, snapshot, write_csv


def refused(cli: Runner, url: str, *args: str) -> str:
    """Run an import that must fail; return its one error line. The database must not change."""
    before = snapshot(url)
    code, out, err = cli(url, "contacts", "import", *args)
    assert code != 0, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert "Traceback" not in err and out == ""
    assert snapshot(url) == before
    return lines[0]


def test_missing_phone_column(db_url: str, campaign: str, cli: Runner, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "c.csv", ["name", "email", "city"], [["a", "b", "c"]])
    line = refused(cli, db_url, campaign, str(path))
    assert "no phone column" in line and "'name', 'email', 'city'" in line
    line = refused(cli, db_url, campaign, str(path), "--phone-column", "tel")
    assert "'tel'" in line and "'name', 'email', 'city'" in line


@pytest.mark.parametrize("content", [b"", b"\n\n", b"\xef\xbb\xbf"])
def test_empty_file(db_url: str, campaign: str, cli: Runner, tmp_path: Path,
                    content: bytes) -> None:
    path = tmp_path / "c.csv"
    path.write_bytes(content)
    assert "is empty" in refused(cli, db_url, campaign, str(path))


def test_header_only(db_url: str, campaign: str, cli: Runner, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "c.csv", ["phone", "name"], [])
    assert "no contacts" in refused(cli, db_url, campaign, str(path))


def test_binary_file(db_url: str, campaign: str, cli: Runner, tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_bytes(os.urandom(4096) + b"\x00\x01\x02")
    assert "binary" in refused(cli, db_url, campaign, str(path))
    fake = tmp_path / "c.xlsx"
    fake.write_text("phone\n(212) 736-5000\n")
    assert "not an Excel workbook" in refused(cli, db_url, campaign, str(fake))


def test_latin1_needs_encoding(db_url: str, campaign: str, cli: Runner, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "c.csv", ["phone", "name"],
                     [["(212) 736-5000", "Zoë"], ["415-379-1414", "José"]], encoding="latin-1")
    line = refused(cli, db_url, campaign, str(path))
    assert "not valid utf-8" in line and "--encoding" in line and "line 2" in line
    summary = import_json(cli, db_url, campaign, str(path), "--encoding", "latin-1")
    assert summary["accepted"] == 2
    names = {json.loads(v)["name"] if isinstance(v, str) else v["name"]
             for (v,) in query(db_url, "SELECT custom_fields FROM contacts")}
    assert names == {"Zoë", "José"}
    assert "unknown encoding" in refused(cli, db_url, campaign, str(path), "--encoding", "nope")


def test_ragged_rows(db_url: str, campaign: str, cli: Runner, tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text("phone,name\n(212) 736-5000,a\n415-379-1414,b,extra,more\n(312) 782-4000\n"
                    "(617) 253-1000,d\n", encoding="utf-8")
    summary = import_json(cli, db_url, campaign, str(path), "--rejects", str(tmp_path / "r.csv"))
    assert (summary["rows_read"], summary["accepted"], summary["invalid"]) == (4, 2, 2)
    rejects = read_rejects(tmp_path / "r.csv")
    assert [(r["row"], r["reason"], r["detail"]) for r in rejects] == [
        ("3", "wrong_field_count", "row has 4 fields, the header 2"),
        ("4", "wrong_field_count", "row has 1 fields, the header 2")]
    assert rejects[0]["phone"] == "415-379-1414"
    assert query(db_url, "SELECT source_row FROM contacts ORDER BY 1") == [(2,), (5,)]


def test_duplicate_headers(db_url: str, campaign: str, cli: Runner, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "c.csv", ["phone", "email", "email"], [["(212) 736-5000", "a",
                                                                        "b"]])
    line = refused(cli, db_url, campaign, str(path))
    assert "'email' (columns 2 and 3)" in line and "rename" in line


def test_huge_cell(db_url: str, campaign: str, cli: Runner, tmp_path: Path) -> None:
    big = "x" * 100_000
    path = write_csv(tmp_path / "c.csv", ["phone", "notes"],
                     [["(212) 736-5000", big], ["1" * 100_000, "short"]])
    summary = import_json(cli, db_url, campaign, str(path), "--rejects", str(tmp_path / "r.csv"))
    assert (summary["accepted"], summary["invalid"]) == (1, 1)
    assert summary["reasons"] == {"unparseable": 1}
    stored = query(db_url, "SELECT custom_fields FROM contacts")[0][0]
    assert (json.loads(stored) if isinstance(stored, str) else stored)["notes"] == big
    assert read_rejects(tmp_path / "r.csv")[0]["detail"] == "TOO_LONG"


def test_formulas_are_text(db_url: str, campaign: str, cli: Runner, tmp_path: Path) -> None:
    formula = '=HYPERLINK("http://x","y")'
    path = write_csv(tmp_path / "c.csv", ["phone", "link", "First Name"],
                     [["(212) 736-5000", formula, "=cmd|' /C calc'!A0"], [formula, "x", "y"]])
    summary = import_json(cli, db_url, campaign, str(path), "--rejects", str(tmp_path / "r.csv"))
    assert (summary["accepted"], summary["invalid"]) == (1, 1)
    cf, first = query(db_url, "SELECT custom_fields, first_name FROM contacts")[0]
    assert (json.loads(cf) if isinstance(cf, str) else cf) == {"link": formula}
    assert first == "=cmd|' /C calc'!A0"
    # The database keeps the values; the rejects CSV (opened in spreadsheets) is formula-safe.
    assert read_rejects(tmp_path / "r.csv")[0]["phone"] == "'" + formula


def test_unknown_campaign(db_url: str, campaign: str, cli: Runner, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "c.csv", ["phone"], [["(212) 736-5000"]])
    line = refused(cli, db_url, "nope", str(path))
    assert "no campaign named 'nope'" in line


@pytest.mark.parametrize("status", ["completed", "cancelled"])
def test_finished_campaign(db_url: str, campaign: str, cli: Runner, tmp_path: Path,
                           status: str) -> None:
    if status == "cancelled":
        assert cli(db_url, "campaign", "stop", campaign)[0] == 0
    else:
        _set_status(db_url, campaign, status)
    path = write_csv(tmp_path / "c.csv", ["phone"], [["(212) 736-5000"]])
    line = refused(cli, db_url, campaign, str(path))
    assert f"is {status}" in line


def _set_status(url: str, name: str, status: str) -> None:
    import asyncio

    from sqlalchemy import text

    from campaigns.db.engine import create_engine

    async def _go() -> None:
        engine = create_engine(url)
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE campaigns SET status = :s WHERE name = :n"),
                               {"s": status, "n": name})
        await engine.dispose()

    asyncio.run(_go())


def test_other_refusals(db_url: str, campaign: str, cli: Runner, tmp_path: Path) -> None:
    assert "does not exist" in refused(cli, db_url, campaign, str(tmp_path / "missing.csv"))
    path = write_csv(tmp_path / "c.csv", ["phone"], [["(212) 736-5000"]])
    assert "--default-region" in refused(cli, db_url, campaign, str(path), "--default-region",
                                         "XX")
    old = tmp_path / "c.xls"
    old.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100)
    assert ".xls" in refused(cli, db_url, campaign, str(old))
