"""The command line writing into pipes and files, not a terminal: tables keep their whole
cells, and a reader that stops early (`| head`) gets no error message."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SOURCE = "keypress in campaign 'a campaign with a long name' at 2026-12-04T18:00:26+00:00"


def _dialer(url: str, *args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DIALER_DATABASE_URL": url}
    return subprocess.run([sys.executable, "-m", "dialer.cli.main", *args], env=env, text=True,
                          capture_output=True, check=False, **kw)  # type: ignore[call-overload]


@pytest.fixture
def url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'd.db'}"
    assert _dialer(url, "db", "upgrade").returncode == 0
    return url


def test_a_table_into_a_file_keeps_whole_cells(url: str, tmp_path: Path) -> None:
    import sqlite3

    assert _dialer(url, "dnc", "add", "+14155550100").returncode == 0
    with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
        db.execute("UPDATE dnc_numbers SET source = ?", (SOURCE,))
    listed = _dialer(url, "dnc", "list")  # stdout is a pipe
    assert listed.returncode == 0 and SOURCE in listed.stdout


def test_a_reader_that_stops_early_gets_no_error(url: str, tmp_path: Path) -> None:
    assert _dialer(url, "campaign", "create", "c", "--from", "+14155550100",
                   "--connection-id", "x").returncode == 0
    contacts = tmp_path / "c.csv"
    contacts.write_text("phone\n" + "".join(f"+1415555{i:04d}\n" for i in range(3000)))
    assert _dialer(url, "contacts", "import", "c", str(contacts)).returncode == 0
    env = {**os.environ, "DIALER_DATABASE_URL": url}
    proc = subprocess.Popen([sys.executable, "-m", "dialer.cli.main", "report", "c"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline().startswith("phone,")
    proc.stdout.close()  # like `| head -1`: the rest (over 64 KiB) meets a closed pipe
    err = proc.stderr.read()
    proc.wait(timeout=60)
    assert "error" not in err.lower(), err
