"""One `dialer run` per SQLite file: a second one is refused at start with one line; the lock dies
with its holder, `kill -9` included."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from dialer.engine.single_writer import EngineAlreadyRunning, acquire, lock_path, single_writer
from tests.reliability.harness import _env, free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.fast
def test_lock_path_only_for_sqlite_files(tmp_path: Path) -> None:
    assert lock_path(f"sqlite:///{tmp_path}/d.db") == tmp_path / "d.db.engine.lock"
    assert lock_path(f"sqlite+aiosqlite:///{tmp_path}/d.db") == tmp_path / "d.db.engine.lock"
    assert lock_path("postgresql://u:p@localhost/db") is None
    assert lock_path("sqlite://") is None
    assert lock_path("sqlite:///:memory:") is None
    assert lock_path("sqlite:///file:mem1?mode=memory&cache=shared&uri=true") is None
    assert lock_path(f"sqlite:///file:{tmp_path}/u.db?uri=true") == tmp_path / "u.db.engine.lock"


@pytest.mark.fast
def test_second_lock_refused_until_released(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/d.db"
    with single_writer(url) as held:
        assert held is not None
        with pytest.raises(EngineAlreadyRunning) as exc:
            acquire(url)  # another open file description: refused, even in this process
        message = str(exc.value)
        assert f"pid {os.getpid()}" in message and "use PostgreSQL" in message
        assert "\n" not in message
    again = acquire(url)
    assert again is not None
    again.release()
    assert acquire("sqlite:///:memory:") is None


def _engine(url: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "dialer.cli.main", "--database-url", url, "run", "--simulate",
         "--port", str(port), "--speed", "50"],
        cwd=ROOT, env=_env(), stdout=log.open("wb"), stderr=subprocess.STDOUT)


def _wait_healthy(proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError("engine did not become healthy:\n" + log.read_text())


def test_second_engine_on_one_sqlite_file_is_refused(sqlite_url: str, tmp_path: Path) -> None:
    port = free_port()
    first = _engine(sqlite_url, port, tmp_path / "first.log")
    procs = [first]
    try:
        _wait_healthy(first, port, tmp_path / "first.log")
        second = subprocess.run(
            [sys.executable, "-m", "dialer.cli.main", "--database-url", sqlite_url, "run",
             "--simulate", "--port", str(free_port())],
            check=False, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=60)
        assert second.returncode != 0
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1, second.stderr
        assert lines[0].startswith("error: another `dialer run` (pid ")
        assert "SQLite has one writer" in lines[0] and "use PostgreSQL" in lines[0]
        assert "Traceback" not in second.stderr

        os.kill(first.pid, signal.SIGKILL)  # the kernel frees the lock with the process
        first.wait(timeout=30)
        port = free_port()
        third = _engine(sqlite_url, port, tmp_path / "third.log")
        procs.append(third)
        _wait_healthy(third, port, tmp_path / "third.log")
        third.send_signal(signal.SIGTERM)
        assert third.wait(timeout=60) == 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


@pytest.mark.fast
def test_missing_folder_is_left_to_the_engine(tmp_path: Path) -> None:
    assert acquire(f"sqlite:///{tmp_path}/nowhere/d.db") is None
