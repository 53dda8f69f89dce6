"""`dialer contacts import` end to end, on SQLite and PostgreSQL."""

from __future__ import annotations

import functools
import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from campaigns.db import storage
from campaigns.importing import original_row, pipeline
from campaigns.importing.phones import PhoneNormalizer, reference
from dialer.cli import contacts_cmd
from tests.importing.conftest import (
    Runner,
    import_json,
    query,
    read_rejects,
    snapshot,
    write_csv,
)

HEADER = ["Account", "First Name", "Last Name", "Phone", "Email", "State", "Time Zone", "Zip",
          "notes"]


def test_contacts_are_clean_and_complete(db_url: str, campaign: str, cli: Runner,
                                         tmp_path: Path) -> None:
    rows = [
        ["A1", "Ann", "Lee", "(212) 736-5000", "ann@example.com", "NY", "", "02134", "vip"],
        ["A2", " Bob ", "", "415.379.1414 ext. 12", "", "", "", "", '=HYPERLINK("http://x","y")'],
        ["A3", "Cy", "Z", "+44 20 7946 0958", "", "", "Europe/London", "", "line\nbreak"],
    ]
    path = write_csv(tmp_path / "c.csv", HEADER, rows)
    before = datetime.now(UTC)
    summary = import_json(cli, db_url, campaign, str(path))
    assert (summary["rows_read"], summary["accepted"], summary["invalid"]) == (3, 3, 0)
    assert summary["mapping"]["phone"] == "Phone" and summary["columns"] == HEADER
    got = query(db_url, "SELECT source_row, phone_e164, phone_raw, extension, first_name, "
                        "last_name, email, region, postal_code, timezone_source, status, attempts,"
                        " import_id, next_attempt_at, timezones, custom_fields "
                        "FROM contacts ORDER BY source_row")
    assert [g[:13] for g in got] == [
        (2, "+12127365000", "(212) 736-5000", None, "Ann", "Lee", "ann@example.com", "NY",
         "02134", "region", "queued", 0, summary["import_id"]),
        (3, "+14153791414", "415.379.1414 ext. 12", "12", " Bob ", None, None, None, None,
         "number", "queued", 0, summary["import_id"]),
        (4, "+442079460958", "+44 20 7946 0958", None, "Cy", "Z", None, None, None, "explicit",
         "queued", 0, summary["import_id"]),
    ]
    for g in got:
        due = g[13] if isinstance(g[13], datetime) else datetime.fromisoformat(str(g[13]))
        due = due.replace(tzinfo=UTC) if due.tzinfo is None else due
        assert before - timedelta(minutes=1) <= due <= datetime.now(UTC)
    zones = [json.loads(g[14]) if isinstance(g[14], str) else g[14] for g in got]
    assert zones == [["America/New_York"], ["America/Los_Angeles"], ["Europe/London"]]
    custom = [json.loads(g[15]) if isinstance(g[15], str) else g[15] for g in got]
    assert custom[1] == {"Account": "A2", "Time Zone": "", "notes": '=HYPERLINK("http://x","y")'}
    assert custom[2]["notes"] == "line\nbreak"

    record = query(db_url, "SELECT id, file_name, columns, phone_column, rows_read, accepted "
                           "FROM contact_imports")
    assert len(record) == 1
    columns = record[0][2] if isinstance(record[0][2], list) else json.loads(record[0][2])
    assert columns == HEADER and record[0][3] == "Phone" and record[0][4:] == (3, 3)

    # A report can give every row back as it came in, in the file's order.
    class Row:
        def __init__(self, values: tuple[Any, ...]) -> None:
            (self.phone_raw, self.first_name, self.last_name, self.email, self.region,
             self.postal_code, cf) = values
            self.custom_fields = json.loads(cf) if isinstance(cf, str) else cf

    back = query(db_url, "SELECT phone_raw, first_name, last_name, email, region, postal_code, "
                         "custom_fields FROM contacts ORDER BY source_row")
    assert [original_row(columns, "Phone", Row(b)) for b in back] == rows


def test_duplicates_in_file_and_in_campaign(db_url: str, campaign: str, cli: Runner,
                                            tmp_path: Path) -> None:
    first = write_csv(tmp_path / "a.csv", ["phone", "name"], [
        ["(212) 736-5000", "a"], ["415-379-1414", "b"], ["+1 212 736 5000", "a again"],
        ["1-212-736-5000", "a thrice"], ["(312) 782-4000", "c"]])
    summary = import_json(cli, db_url, campaign, str(first), "--rejects",
                          str(tmp_path / "r1.csv"))
    assert (summary["accepted"], summary["duplicates"]) == (3, 2)
    rejects = read_rejects(tmp_path / "r1.csv")
    assert [(r["row"], r["reason"], r["duplicate_of_row"]) for r in rejects] == [
        ("4", "duplicate", "2"), ("5", "duplicate", "2")]

    second = write_csv(tmp_path / "b.csv", ["phone", "name"], [
        ["312.782.4000", "c"], ["(617) 253-1000", "d"], ["617 253 1000", "d"]])
    summary = import_json(cli, db_url, campaign, str(second), "--rejects",
                          str(tmp_path / "r2.csv"))
    assert (summary["accepted"], summary["duplicates"]) == (1, 2)
    assert summary["reasons"] == {"already_in_campaign": 1, "duplicate": 1}
    rejects = read_rejects(tmp_path / "r2.csv")
    assert [(r["row"], r["reason"], r["duplicate_of_row"]) for r in rejects] == [
        ("2", "already_in_campaign", ""), ("4", "duplicate", "3")]
    assert query(db_url, "SELECT count(*) FROM contacts") == [(4,)]


def test_same_file_twice_adds_nothing(db_url: str, campaign: str, cli: Runner,
                                      tmp_path: Path) -> None:
    path = write_csv(tmp_path / "c.csv", ["phone"], [["(212) 736-5000"], ["415-379-1414"]])
    first = import_json(cli, db_url, campaign, str(path))
    again = import_json(cli, db_url, campaign, str(path))
    assert first["accepted"] == 2
    assert (again["accepted"], again["duplicates"]) == (0, 2)
    assert again["same_file_imports"] == [first["import_id"]]
    assert query(db_url, "SELECT count(*) FROM contacts") == [(2,)]


def test_dnc_numbers_are_suppressed(db_url: str, campaign: str, cli: Runner,
                                    tmp_path: Path) -> None:
    assert cli(db_url, "dnc", "add", "+1 415 379 1414")[0] == 0
    path = write_csv(tmp_path / "c.csv", ["phone"], [["(212) 736-5000"], ["415.379.1414"]])
    summary = import_json(cli, db_url, campaign, str(path), "--rejects", str(tmp_path / "r.csv"))
    assert (summary["accepted"], summary["dnc_suppressed"]) == (1, 1)
    assert [r["reason"] for r in read_rejects(tmp_path / "r.csv")] == ["dnc"]
    assert query(db_url, "SELECT phone_e164 FROM contacts") == [("+12127365000",)]


def test_time_zones(db_url: str, campaign: str, cli: Runner, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "c.csv", ["phone", "tz", "state"], [
        ["(212) 736-5000", "America/Los_Angeles", "TX"],  # explicit wins
        ["(212) 736-5001", "Mars/Olympus", "TX"],  # invalid zone falls through to the state
        ["(212) 736-5002", "", "Arizona"],  # region: two zones
        ["(208) 201-2345", "", ""],  # the number: Boise area code, Denver
        ["(208) 301-2345", "", ""],  # the number: two candidates
        ["+1 800 234 5678", "", ""],  # toll free: unknown, campaign fallback
    ])
    summary = import_json(cli, db_url, campaign, str(path))
    got = query(db_url, "SELECT timezone_source, timezones FROM contacts ORDER BY source_row")
    got = [(src, json.loads(z) if isinstance(z, str) else z) for src, z in got]
    assert got == [
        ("explicit", ["America/Los_Angeles"]),
        ("region", ["America/Chicago", "America/Denver"]),
        ("region", ["America/Phoenix", "America/Denver"]),
        ("number", ["America/Denver"]),
        ("number", ["America/Boise", "America/Los_Angeles"]),
        ("fallback", ["America/Chicago"]),
    ]
    assert (summary["tz_unknown"], summary["tz_ambiguous"]) == (1, 3)


def test_dry_run_writes_nothing(db_url: str, campaign: str, cli: Runner, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "c.csv", ["phone"], [["(212) 736-5000"], ["bad"]])
    before = snapshot(db_url)
    summary = import_json(cli, db_url, campaign, str(path), "--dry-run", "--rejects",
                          str(tmp_path / "r.csv"))
    assert summary["dry_run"] and summary["accepted"] == 1 and summary["invalid"] == 1
    assert summary["import_id"] is None
    assert snapshot(db_url) == before
    assert [r["reason"] for r in read_rejects(tmp_path / "r.csv")] == ["unparseable"]


@pytest.mark.parametrize("failure", [RuntimeError("disk on fire"), KeyboardInterrupt()])
def test_failure_mid_import_leaves_nothing(db_url: str, campaign: str, cli: Runner,
                                           tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           failure: BaseException) -> None:
    rows = [[f"(212) 736-{i:04d}", f"name {i}"] for i in range(3000)]
    path = write_csv(tmp_path / "c.csv", ["phone", "name"], rows)
    monkeypatch.setattr(contacts_cmd, "ImportOptions",
                        functools.partial(contacts_cmd.ImportOptions, block_size=8 << 10))
    real = storage.insert_contacts
    calls: list[int] = []

    async def failing(session: Any, table: Any, *into: str) -> int:
        calls.append(table.num_rows)
        if len(calls) == 2:
            raise failure
        return await real(session, table, *into)

    monkeypatch.setattr(storage, "insert_contacts", failing)
    before = snapshot(db_url)
    code, _, err = cli(db_url, "contacts", "import", campaign, str(path), "--rejects",
                       str(tmp_path / "r.csv"))
    assert code != 0 and len(calls) == 2 and calls[0] > 0, err
    assert snapshot(db_url) == before
    assert not (tmp_path / "r.csv").exists()
    assert not list(tmp_path.glob(".r.csv.*"))  # no temporary rejects file left behind


def test_rejects_report(db_url: str, campaign: str, cli: Runner, tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text('id,phone,notes\n1,(212) 736-5000,"two\nlines"\n2,,x\n3,abc,=1+1\n'
                    '4,(212) 736-5000,"a, b"\n5,1,2,3\n6,(123) 456-7890,"say ""hi"""\n',
                    encoding="utf-8")
    summary = import_json(cli, db_url, campaign, str(path), "--rejects", str(tmp_path / "r.csv"))
    assert summary["rows_read"] == 6 and summary["accepted"] == 1
    text = (tmp_path / "r.csv").read_text(encoding="utf-8")
    assert text.splitlines()[0] == "row,reason,duplicate_of_row,detail,id,phone,notes"
    got = [(r["row"], r["reason"], r["duplicate_of_row"], r["id"], r["phone"], r["notes"])
           for r in read_rejects(tmp_path / "r.csv")]
    assert got == [
        ("3", "missing_phone", "", "2", "", "x"),
        ("4", "unparseable", "", "3", "abc", "'=1+1"),  # formula-safe
        ("5", "duplicate", "2", "4", "(212) 736-5000", "a, b"),
        ("6", "wrong_field_count", "", "5", "1", "2"),
        ("7", "invalid_number", "", "6", "(123) 456-7890", 'say "hi"'),
    ]
    assert read_rejects(tmp_path / "r.csv")[3]["detail"] == "row has 4 fields, the header 3"


def test_cli_output(db_url: str, campaign: str, cli: Runner, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "c.csv", ["phone"], [["(212) 736-5000"], ["nope"]])
    code, out, err = cli(db_url, "contacts", "import", campaign, str(path))
    assert code == 0 and out == ""
    for label in ("rows read", "accepted", "invalid", "duplicates", "DNC-suppressed",
                  "time zone unknown", "time zone ambiguous", "elapsed", "rows/s"):
        assert label in err
    assert "--rejects" in err
    code, out, err = cli(db_url, "contacts", "import", campaign, str(path), "--json")
    assert code == 0 and json.loads(out)["duplicates"] == 1


def test_xlsx(db_url: str, campaign: str, cli: Runner, tmp_path: Path) -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.append(["Mobile", "First Name", "Zip", "Link"])
    ws.append([2127365000, "Ann", "02134", '=HYPERLINK("http://x","y")'])
    ws.append([])
    ws.append(["+1 415 379 1414", "Bob", 2134, None])
    ws.append(["(212) 736-5000", "dup", None, None])
    path = tmp_path / "c.xlsx"
    wb.save(path)
    summary = import_json(cli, db_url, campaign, str(path), "--rejects", str(tmp_path / "r.csv"))
    assert (summary["rows_read"], summary["accepted"], summary["blank_rows"]) == (3, 2, 1)
    got = query(db_url, "SELECT source_row, phone_e164, phone_raw, postal_code, custom_fields "
                        "FROM contacts ORDER BY source_row")
    assert [g[:4] for g in got] == [(2, "+12127365000", "2127365000", "02134"),
                                    (4, "+14153791414", "+1 415 379 1414", "2134")]
    custom = json.loads(got[0][4]) if isinstance(got[0][4], str) else got[0][4]
    assert custom == {"Link": '=HYPERLINK("http://x","y")'}
    assert [(r["row"], r["duplicate_of_row"]) for r in read_rejects(tmp_path / "r.csv")] == [
        ("5", "2")]


@pytest.mark.parametrize("delimiter, encoding", [(";", "utf-8-sig"), ("\t", "utf-8"),
                                                 ("|", "utf-16")])
def test_delimiters_and_encodings(db_url: str, campaign: str, cli: Runner, tmp_path: Path,
                                  delimiter: str, encoding: str) -> None:
    path = write_csv(tmp_path / "c.csv", ["Name", "Phone Number"],
                     [["Zoë", "(212) 736-5000"], ["José", "415-379-1414"]], delimiter, encoding)
    summary = import_json(cli, db_url, campaign, str(path))
    assert summary["accepted"] == 2 and summary["columns"] == ["Name", "Phone Number"]
    assert query(db_url, "SELECT custom_fields FROM contacts ORDER BY source_row")[0][0] in (
        '{"Name":"Zoë"}', {"Name": "Zoë"})


def test_proven_fast_path_inside_the_import(db_url: str, campaign: str, cli: Runner,
                                            tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    rnd = random.Random(3)
    formats = ["({a}) {e}-{s}", "{a}-{e}-{s}", "+1{a}{e}{s}", "1 {a} {e} {s}", "{a}.{e}.{s}"]
    values = [rnd.choice(formats).format(a=rnd.choice([212, 415, 305, 208, 800, 123, 555, 907]),
                                         e=rnd.randint(100, 999), s=f"{rnd.randint(0, 9999):04d}")
              for _ in range(1500)]
    path = write_csv(tmp_path / "c.csv", ["phone"], [[v] for v in values])
    monkeypatch.setattr(pipeline, "PhoneNormalizer",
                        functools.partial(PhoneNormalizer, fast_min=0))
    summary = import_json(cli, db_url, campaign, str(path))
    expected: dict[str, str] = {}
    for v in values:
        ref = reference(v, "US")
        if ref.e164 is not None:
            expected.setdefault(ref.e164, v)
    assert summary["accepted"] == len(expected)
    got = dict(query(db_url, "SELECT phone_e164, phone_raw FROM contacts"))
    assert got == expected
