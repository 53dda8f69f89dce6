"""`dialer report` from the command line: outputs, and one clear line for every user error."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from dialer.cli.main import main
from tests.reports import data
from tests.reports.readback import read_csv, read_jsonl


def dialer(capsys: pytest.CaptureFixture[str], url: str, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["--database-url", url, *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_error_line(err: str, fragment: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert fragment in lines[0], err
    assert "Traceback" not in err


def test_csv_and_jsonl_on_stdout(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    data.build_sync(db_url)
    code, out, err = dialer(capsys, db_url, "report", "spring")
    assert code == 0, err
    header, rows = read_csv(out)
    assert header[0] == "Phone" and len(rows) == 16
    assert "wrote 16 contacts to stdout" in err
    code, out, err = dialer(capsys, db_url, "report", "spring", "--attempts",
                            "--format", "jsonl")
    assert code == 0, err
    _, rows = read_jsonl(out)
    assert len(rows) == 15 and rows[0]["command_id"].startswith("cmd-")


def test_files_by_extension_and_explicit_format(sqlite_url: str, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    data.build_sync(sqlite_url)
    for name in ("r.xlsx", "r.parquet", "r.html", "r.ndjson"):
        code, out, err = dialer(capsys, sqlite_url, "report", "spring", "-o", str(tmp_path / name))
        assert code == 0 and out == "", err
        assert (tmp_path / name).stat().st_size > 0
    code, _, err = dialer(capsys, sqlite_url, "report", "spring", "-o", str(tmp_path / "out.dat"),
                          "--format", "csv")
    assert code == 0, err
    assert (tmp_path / "out.dat").read_text(encoding="utf-8").startswith("Phone,")
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]


def test_summary_table_and_json(sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    data.build_sync(sqlite_url)
    code, out, err = dialer(capsys, sqlite_url, "report", "spring", "--summary")
    assert code == 0, err
    assert "answer rate" in out and "no_answer" in out
    code, out, err = dialer(capsys, sqlite_url, "report", "spring", "--summary", "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["contacts"] == 16 and summary["attempts_placed"] == 13
    assert {"answer_rate", "human_rate", "machine_rate", "voicemails_left", "talk_seconds_avg",
            "talk_seconds_median", "attempts_per_contact", "dials_per_hour", "contacts_remaining",
            "eta_seconds", "outcomes"} <= set(summary)


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["report", "nope"], "no campaign named 'nope'"),
        (["report", "nope", "-o", "{tmp}/x.csv"], "no campaign named 'nope'"),
        (["report", "spring", "-o", "{tmp}/missing/x.csv"], "does not exist"),
        (["report", "spring", "-o", "{tmp}"], "it is a folder"),
        (["report", "spring", "--format", "xlsx"], "-o FILE.xlsx"),
        (["report", "spring", "--format", "parquet"], "-o FILE.parquet"),
        (["report", "spring", "-o", "{tmp}/x.txt"], "cannot tell the report format"),
        (["report", "spring", "--format", "pdf"], "Invalid value for '--format'"),
        (["report", "spring", "--json"], "--json goes with --summary"),
        (["report", "spring", "--summary", "-o", "{tmp}/x.csv"], "--summary"),
        (["report", "spring", "--attempts", "-o", "{tmp}/x.html"], "--attempts"),
    ],
)
def test_user_errors_are_one_line(sqlite_url: str, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str], args: list[str],
                                        fragment: str) -> None:
    data.build_sync(sqlite_url)
    before = sorted(p.name for p in tmp_path.iterdir())
    code, out, err = dialer(capsys, sqlite_url, *[a.format(tmp=tmp_path) for a in args])
    assert code != 0 and out == ""
    one_error_line(err, fragment)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no file, no temp file left


def test_unwritable_file_is_one_line(pg_url: str, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    data.build_sync(pg_url)
    not_a_folder = tmp_path / "notes.txt"
    not_a_folder.write_text("x")
    code, _, err = dialer(capsys, pg_url, "report", "spring", "-o",
                          str(not_a_folder / "x.parquet"))
    assert code != 0
    one_error_line(err, "cannot write the report to")
    read_only = tmp_path / "ro"
    read_only.mkdir()
    read_only.chmod(0o500)
    try:
        code, _, err = dialer(capsys, pg_url, "report", "spring", "-o", str(read_only / "x.csv"))
        if code == 0:
            assert os.geteuid() == 0  # root ignores permission bits: nothing to check
        else:
            one_error_line(err, "Permission denied")
    finally:
        read_only.chmod(0o700)
