"""Hostile files and careless paths against `contacts import`, `report` and `campaign create`.

- Output paths (`report -o`, `--rejects`): never the database (its file, -wal, a symlink or a hard
  link to it), never the file being imported, never a device/FIFO, never a missing folder
  (hypothesis picks the path).
- The rejects CSV is formula-safe like the report's CSV.
- A file changed, truncated or deleted while it is imported: the import fails, nothing written.
- Clear errors: non-text --encoding, a binary --config, NUL in a CSV header, UTF-32 with a BOM,
  disk full (stdout on /dev/full; a failing rejects writer), Ctrl-C during a report.
- SQLite: read-only commands complete while another connection holds the write lock.

The bounded XLSX reader has its own file (`tests/importing/test_xlsx_bounds.py`).
"""

from __future__ import annotations

import csv
import errno
import hashlib
import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import make_url

from campaigns.importing import reader as rd
from dialer.cli.main import main
from tests.importing.conftest import query, snapshot
from tests.reports import data

ROOT = Path(__file__).resolve().parents[2]
Runner = Callable[..., tuple[int, str, str]]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Runner:
    def _run(url: str, *args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(["--database-url", url, *args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return _run


def one_error_line(err: str, *fragments: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert "Traceback" not in err and "internal error" not in err, err
    for fragment in fragments:
        assert fragment in lines[0], err
    return lines[0]


def sqlite_file(url: str) -> Path | None:
    parsed = make_url(url)
    return Path(str(parsed.database)) if parsed.get_backend_name() == "sqlite" else None


def contacts_csv(path: Path, rows: list[list[str]], header: tuple[str, ...] = ("phone", "name"),
                 encoding: str = "utf-8") -> Path:
    with path.open("w", newline="", encoding=encoding) as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def fingerprint(path: Path) -> tuple[Any, ...]:
    """What must not change about a protected path: kind, inode and content."""
    st_ = os.lstat(path)
    content = hashlib.sha256(path.read_bytes()).hexdigest() if stat.S_ISREG(st_.st_mode) else ""
    return (stat.S_IFMT(st_.st_mode), st_.st_ino, st_.st_size, content)


def device_or_fifo(path: Path) -> Path:
    """A character device (the null device's numbers) when allowed, else a FIFO: either way not a
    regular file, and harmless if a bug replaced it (it lives in the test's folder)."""
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except (PermissionError, OSError):
        os.mkfifo(path)
    return path


# -- item 5: output paths --------------------------------------------------------------------

TARGETS = ("database", "database-wal", "symlink-to-database", "hardlink-to-database", "input",
           "symlink-to-input", "device", "missing-folder", "file-as-folder")
COMMANDS = ("report", "import-rejects", "import-rejects-dry-run")


@pytest.mark.slow
def test_output_paths_never_destroy_data(db_url: str, cli: Runner, tmp_path: Path) -> None:
    data.build_sync(db_url)
    work = tmp_path / "work"
    work.mkdir()
    source = contacts_csv(work / "in.csv",
                          [["(212) 736-5000", "a"], ["nope", "=cmd|' /C calc'!A0"]])
    db = sqlite_file(db_url)
    paths: dict[str, Path] = {
        "input": source,
        "device": device_or_fifo(work / "dev"),
        "missing-folder": work / "no" / "such" / "rejects.csv",
        "file-as-folder": work / "in.csv" / "rejects.csv",
    }
    (work / "in-link.csv").symlink_to(source)
    paths["symlink-to-input"] = work / "in-link.csv"
    if db is not None:
        with sqlite3.connect(db) as conn:  # keep a -wal file around, as a running engine does
            conn.execute("PRAGMA journal_mode=WAL")
        wal = Path(f"{db}-wal")
        wal.touch()
        (work / "db-link.csv").symlink_to(db)
        os.link(db, work / "db-hard.csv")
        paths.update({"database": db, "database-wal": wal,
                      "symlink-to-database": work / "db-link.csv",
                      "hardlink-to-database": work / "db-hard.csv"})
    protected = [source, paths["device"], work / "in-link.csv"] + ([db] if db else [])
    before_db = snapshot(db_url)
    before_files = {p: fingerprint(p) for p in protected}
    before_listing = sorted(p.name for p in work.iterdir())

    @settings(max_examples=25, deadline=None, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(command=st.sampled_from(COMMANDS), target=st.sampled_from(TARGETS))
    def check(command: str, target: str) -> None:
        if target not in paths:  # a database file on PostgreSQL
            return
        if command == "report" and target.endswith("input"):
            return  # a report has no input file: replacing a CSV there is what -o is for
        out = str(paths[target])
        if command == "report":
            args = ["report", "spring", "--format", "csv", "-o", out]
        else:
            args = ["contacts", "import", "spring", str(source), "--rejects", out]
            if command.endswith("dry-run"):
                args.append("--dry-run")
        code, _, err = cli(db_url, *args)
        assert code != 0, (command, target, err)
        line = one_error_line(err)
        assert ("refusing to write" in line or "does not exist" in line
                or "is a file, not a folder" in line), line
        assert {p: fingerprint(p) for p in protected} == before_files, (command, target)
        assert sorted(p.name for p in work.iterdir()) == before_listing, (command, target)
        assert not (work / "no").exists()

    check()
    assert snapshot(db_url) == before_db


def test_an_ordinary_output_file_is_still_replaced(sqlite_url: str, cli: Runner,
                                                  tmp_path: Path) -> None:
    data.build_sync(sqlite_url)
    out = tmp_path / "r.csv"
    out.write_text("old\n")
    code, _, err = cli(sqlite_url, "report", "spring", "-o", str(out))
    assert code == 0, err
    assert out.read_text(encoding="utf-8").startswith("Phone,")  # the uploaded columns first


# -- item 11: the rejects CSV is formula-safe ---------------------------------------------------

def test_rejects_csv_is_formula_safe(db_url: str, cli: Runner, tmp_path: Path) -> None:
    data.build_sync(db_url)
    hostile = ["=cmd|' /C calc'!A0", '=HYPERLINK("http://x","y")', "@SUM(A1)", "+1+1", "-2+3",
               "\t=1", "\uff1d1+1"]
    rows = [[h, h] for h in hostile] + [["(212) 736-5000", "ok"], ["(212) 736-5000", "=dup"]]
    path = contacts_csv(tmp_path / "c.csv", rows, header=("phone", "=notes"))
    code, _, err = cli(db_url, "contacts", "import", "spring", str(path), "--rejects",
                       str(tmp_path / "r.csv"))
    assert code == 0, err
    with (tmp_path / "r.csv").open(newline="", encoding="utf-8") as fh:
        table = list(csv.reader(fh))
    assert table[0][-1] == "'=notes"
    for cells in table[1:]:
        for cell in cells:
            assert not cell or cell[0] not in "=+-@\t\r\uff1d\uff0b\uff0d\uff20", table
    notes = [r[-1] for r in table[1:]]
    assert notes == ["'" + h for h in hostile] + ["'=dup"]
    # The database keeps every value as it came.
    stored = {r[0] for r in query(db_url, "SELECT phone_raw FROM contacts")}
    assert "(212) 736-5000" in stored


# -- item 7: a file that changes while it is imported -------------------------------------------

def _big_csv(path: Path, n: int = 2_000) -> Path:
    return contacts_csv(path, [[f"+1212736{i:04d}", f"name{i}"] for i in range(n)])


@pytest.mark.parametrize("change", ["truncated", "rewritten-same-size-and-time", "appended"])
def test_a_file_changed_during_the_import_fails_it(db_url: str, cli: Runner, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   change: str) -> None:
    data.build_sync(db_url)
    path = _big_csv(tmp_path / "c.csv")
    real_open_csv = rd.pacsv.open_csv

    def open_csv_after_a_change(*args: Any, **kwargs: Any) -> Any:
        """The file changes between the inspection (and its hash) and the read."""
        st_ = path.stat()
        raw = path.read_bytes()
        if change == "truncated":
            path.write_bytes(raw[: len(raw) // 2])
        elif change == "appended":
            with path.open("ab") as fh:
                fh.write(b"+12127360000,late\n")
        else:  # other digits, same size, same modification time, same inode
            with path.open("r+b") as fh:
                fh.seek(len(raw) // 2)
                fh.write(raw[len(raw) // 2:].replace(b"+1212736", b"+1415379"))
            os.utime(path, ns=(st_.st_atime_ns, st_.st_mtime_ns))
        return real_open_csv(*args, **kwargs)

    monkeypatch.setattr(rd.pacsv, "open_csv", open_csv_after_a_change)
    before = snapshot(db_url)
    code, _, err = cli(db_url, "contacts", "import", "spring", str(path))
    assert code != 0, err
    one_error_line(err, "changed while it was being imported")
    assert snapshot(db_url) == before


def test_a_file_deleted_between_checks_is_one_clear_line(db_url: str, cli: Runner,
                                                         tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    data.build_sync(db_url)
    path = _big_csv(tmp_path / "c.csv", 10)
    real_inspect = rd.inspect

    def inspect_then_delete(*args: Any, **kwargs: Any) -> rd.SourceInfo:
        info = real_inspect(*args, **kwargs)
        path.unlink()
        return info

    monkeypatch.setattr(rd, "inspect", inspect_then_delete)
    before = snapshot(db_url)
    code, _, err = cli(db_url, "contacts", "import", "spring", str(path))
    assert code != 0
    one_error_line(err, "deleted or moved")
    assert snapshot(db_url) == before


# -- item 9: clear errors ----------------------------------------------------------------------

def test_hostile_encodings_headers_and_config_are_one_line(db_url: str, cli: Runner,
                                                           tmp_path: Path) -> None:
    data.build_sync(db_url)
    path = _big_csv(tmp_path / "c.csv", 5)
    before = snapshot(db_url)
    for codec in ("rot13", "base64", "zlib", "hex", "bz2"):
        code, _, err = cli(db_url, "contacts", "import", "spring", str(path), "--encoding", codec)
        assert code != 0
        one_error_line(err, "not a text encoding")
    nul = tmp_path / "nul.csv"
    nul.write_bytes(b"ph\x00one,name\n(212) 736-5000,a\n")
    for args in (["--encoding", "latin-1"], ["--encoding", "utf-8", "--phone-column", "phone"]):
        code, _, err = cli(db_url, "contacts", "import", "spring", str(nul), *args)
        assert code != 0
        one_error_line(err, "NUL character")
    code, _, err = cli(db_url, "contacts", "import", "spring", str(nul))  # sniffed: binary
    assert code != 0
    one_error_line(err)
    assert snapshot(db_url) == before
    binary = tmp_path / "campaign.toml"
    binary.write_bytes(bytes(range(256)) * 4)
    code, _, err = cli(db_url, "campaign", "create", "bin", "--config", str(binary),
                       "--from", "+14155550100", "--connection-id", "1")
    assert code != 0
    one_error_line(err, "not a TOML text file")
    utf16 = tmp_path / "c16.toml"
    utf16.write_text('from_number = "+14155550100"\n', encoding="utf-16")
    code, _, err = cli(db_url, "campaign", "create", "bin", "--config", str(utf16))
    assert code != 0
    one_error_line(err, "not a TOML text file")
    assert snapshot(db_url) == before


@pytest.mark.parametrize("encoding", ["utf-32", "utf-32-be"])
def test_utf32_with_a_bom_is_read_as_utf32(db_url: str, cli: Runner, tmp_path: Path,
                                           encoding: str) -> None:
    data.build_sync(db_url)
    names = ["Zoë", "Łukasz", "李雷"]
    rows = [[f"+1212736{i:04d}", n] for i, n in enumerate(names)]
    path = tmp_path / "c.csv"
    text = "phone,first_name\n" + "".join(f"{p},{n}\n" for p, n in rows)
    raw = text.encode(encoding)
    if encoding == "utf-32-be":
        raw = b"\x00\x00\xfe\xff" + raw
    path.write_bytes(raw)
    code, out, err = cli(db_url, "contacts", "import", "spring", str(path), "--json")
    assert code == 0, err
    assert json.loads(out)["accepted"] == 3
    got = {r[0]: r[1] for r in query(db_url, "SELECT phone_e164, first_name FROM contacts "
                                             "WHERE phone_e164 LIKE '+1212736%'")}
    assert got == {p: n for p, n in rows}


def test_disk_full_while_writing_rejects_is_one_line(db_url: str, cli: Runner, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    data.build_sync(db_url)
    path = contacts_csv(tmp_path / "c.csv", [["nope", "a"], ["(212) 736-5000", "b"]])

    class FullDisk:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            pass

        def write_table(self, *args: Any) -> None:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def close(self) -> None:
            pass

    monkeypatch.setattr("pyarrow.csv.CSVWriter", FullDisk)
    before = snapshot(db_url)
    code, _, err = cli(db_url, "contacts", "import", "spring", str(path), "--rejects",
                       str(tmp_path / "r.csv"))
    assert code != 0
    one_error_line(err, "No space left on device")
    assert snapshot(db_url) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.csv", "dialer.db"] or \
        sorted(p.name for p in tmp_path.iterdir()) == ["c.csv"]


def test_database_disk_full_during_an_import_is_one_line(db_url: str, cli: Runner,
                                                        tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The database's own "disk full" (SQLite SQLITE_FULL, PostgreSQL 53100) while contacts are
    written: one line, nothing imported."""
    import sqlalchemy.exc

    from campaigns.db import storage

    data.build_sync(db_url)
    path = contacts_csv(tmp_path / "c.csv", [["(212) 736-5000", "a"]])

    async def full(*args: Any) -> int:
        raise sqlalchemy.exc.OperationalError(
            "INSERT INTO contacts ...", {}, sqlite3.OperationalError("database or disk is full"))

    monkeypatch.setattr(storage, "insert_contacts", full)
    before = snapshot(db_url)
    code, _, err = cli(db_url, "contacts", "import", "spring", str(path))
    assert code != 0
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: no space left on the disk"), err
    assert snapshot(db_url) == before


def _dialer(url: str, *args: str, **kwargs: Any) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DIALER_DATABASE_URL": url}
    env.update(kwargs.pop("env", {}))
    return subprocess.Popen([sys.executable, "-m", "dialer.cli.main", *args], cwd=kwargs.pop(
        "cwd"), env=env, stderr=subprocess.PIPE, **kwargs)


def test_report_to_a_full_disk_is_one_line(db_url: str, tmp_path: Path) -> None:
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full here")
    data.build_sync(db_url)
    with open("/dev/full", "wb") as full:
        proc = _dialer(db_url, "report", "spring", cwd=tmp_path, stdout=full)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    one_error_line(err.decode(), "No space left on device")


SLOW_WRITER = '''
import time
from campaigns.reports import rows, writers
rows.CHUNK_ROWS = 2  # several chunks, so that the export is still running when Ctrl-C comes
_write = writers.JsonlWriter.write

def write(self, rows):
    _write(self, rows)
    time.sleep(3)  # Ctrl-C arrives here, the temp file half written

writers.JsonlWriter.write = write
'''


@pytest.mark.slow
def test_ctrl_c_during_a_report_is_one_line_and_leaves_no_file(db_url: str,
                                                               tmp_path: Path) -> None:
    data.build_sync(db_url)
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(SLOW_WRITER)
    out = tmp_path / "out"
    out.mkdir()
    proc = _dialer(db_url, "report", "spring", "--format", "jsonl", "-o", str(out / "r.jsonl"),
                   cwd=tmp_path, stdout=subprocess.PIPE,
                   env={"PYTHONPATH": os.pathsep.join([str(hook), str(ROOT)])})
    deadline = time.monotonic() + 60
    while not list(out.iterdir()) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(out.iterdir()), "the report never started writing"
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    text = err.decode()
    assert proc.returncode == 130, text
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in text, text
    assert list(out.iterdir()) == []  # neither the report nor its temp file


# -- item 8: SQLite readers do not wait for writers --------------------------------------------

def test_sqlite_readers_complete_while_a_write_is_held(sqlite_url: str, cli: Runner,
                                                       tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    data.build_sync(sqlite_url)
    db = sqlite_file(sqlite_url)
    assert db is not None
    # A short busy timeout: a reader that waits for the lock fails in 1 s instead of 30 s.
    monkeypatch.setattr("campaigns.db.engine.SQLITE_BUSY_TIMEOUT_MS", 1_000)
    writer = sqlite3.connect(db, isolation_level=None, timeout=1)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("BEGIN IMMEDIATE")  # what an import holds for its whole file
    writer.execute("UPDATE campaigns SET updated_at = updated_at")
    try:
        for args in (["status", "spring", "--json"], ["campaign", "list"],
                     ["campaign", "show", "spring"], ["dnc", "list"],
                     ["report", "spring", "--summary"], ["report", "spring"]):
            code, _, err = cli(sqlite_url, *args)
            assert code == 0, (args, err)
    finally:
        writer.rollback()
        writer.close()


def _during_the_import(monkeypatch: pytest.MonkeyPatch, action: Callable[[], None]) -> list[int]:
    """Run `action` (from another connection) once the import has staged its first batch."""
    import functools

    from campaigns.db import storage
    from dialer.cli import contacts_cmd

    monkeypatch.setattr(contacts_cmd, "ImportOptions",
                        functools.partial(contacts_cmd.ImportOptions, block_size=8 << 10))
    real = storage.insert_contacts
    calls: list[int] = []

    async def insert(session: Any, table: Any, *into: str) -> int:
        calls.append(table.num_rows)
        done = await real(session, table, *into)
        if len(calls) == 1:
            action()
        return done

    monkeypatch.setattr(storage, "insert_contacts", insert)
    return calls


def test_sqlite_import_does_not_hold_the_write_lock_while_it_reads(
        sqlite_url: str, cli: Runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data.build_sync(sqlite_url)
    db = sqlite_file(sqlite_url)
    path = _big_csv(tmp_path / "c.csv", 3_000)
    seen: dict[str, Any] = {}

    def other_writer_and_reader() -> None:
        conn = sqlite3.connect(db, isolation_level=None, timeout=1)
        try:
            conn.execute("BEGIN IMMEDIATE")  # "database is locked" if the import held it
            conn.execute("UPDATE campaigns SET updated_at = updated_at")
            conn.execute("COMMIT")
            seen["staged rows visible"] = conn.execute(
                "SELECT count(*) FROM contacts WHERE phone_e164 LIKE '+1212736%'").fetchone()[0]
        finally:
            conn.close()
        # `dialer status` in another thread (the import's event loop is running here)
        with ThreadPoolExecutor(1) as pool:
            seen["status"] = pool.submit(main, ["--database-url", sqlite_url, "status",
                                                "spring"]).result()

    calls = _during_the_import(monkeypatch, other_writer_and_reader)
    code, _, err = cli(sqlite_url, "contacts", "import", "spring", str(path))
    assert code == 0, err
    assert len(calls) > 1 and seen["staged rows visible"] == 0
    assert seen["status"] == 0, err
    ids = [r[0] for r in query(sqlite_url, "SELECT source_row FROM contacts WHERE phone_e164 "
                                           "LIKE '+1212736%' ORDER BY id")]
    assert ids == list(range(2, 3_002))  # file order kept
    assert query(sqlite_url, "SELECT count(*) FROM contact_imports WHERE rows_read = 3000") == [
        (1,)]


def test_sqlite_import_fails_whole_when_others_add_its_numbers_meanwhile(
        sqlite_url: str, cli: Runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data.build_sync(sqlite_url)
    db = sqlite_file(sqlite_url)
    path = _big_csv(tmp_path / "c.csv", 3_000)

    def add_a_dnc_number() -> None:
        conn = sqlite3.connect(db, isolation_level=None, timeout=5)
        try:
            conn.execute("INSERT INTO dnc_numbers (phone_e164, added_at) VALUES "
                         "('+12127360005', '2026-01-01 00:00:00.000000')")
        finally:
            conn.close()

    _during_the_import(monkeypatch, add_a_dnc_number)
    before = query(sqlite_url, "SELECT count(*) FROM contacts")
    code, _, err = cli(sqlite_url, "contacts", "import", "spring", str(path))
    assert code != 0
    one_error_line(err, "by someone else")
    assert query(sqlite_url, "SELECT count(*) FROM contacts") == before


def test_simulator_public_key_file_follows_the_same_rules(tmp_path: Path) -> None:
    fifo = device_or_fifo(tmp_path / "dev")
    before = fingerprint(fifo)
    for target, fragment in ((fifo, "not a regular file"),
                             (tmp_path / "no" / "key.txt", "does not exist")):
        done = subprocess.run([sys.executable, "-m", "dialer.cli.main", "simulator", "--port", "0",
                               "--public-key-file", str(target)], capture_output=True, text=True,
                              timeout=60, cwd=tmp_path, check=False)
        assert done.returncode != 0
        one_error_line(done.stderr, fragment)
    assert fingerprint(fifo) == before and not (tmp_path / "no").exists()


def test_sqlite_import_into_a_campaign_cancelled_meanwhile_fails_whole(
        sqlite_url: str, cli: Runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data.build_sync(sqlite_url)
    db = sqlite_file(sqlite_url)
    path = _big_csv(tmp_path / "c.csv", 3_000)

    def cancel() -> None:
        conn = sqlite3.connect(db, isolation_level=None, timeout=5)
        try:
            conn.execute("UPDATE campaigns SET status = 'cancelled' WHERE name = 'spring'")
        finally:
            conn.close()

    _during_the_import(monkeypatch, cancel)
    before = query(sqlite_url, "SELECT count(*) FROM contacts")
    code, _, err = cli(sqlite_url, "contacts", "import", "spring", str(path))
    assert code != 0
    one_error_line(err, "is cancelled")
    assert query(sqlite_url, "SELECT count(*) FROM contacts") == before
