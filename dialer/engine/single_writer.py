"""One `dialer run` per SQLite file.

SQLite has one writer at a time, and the engine's limits (account dial rate, channels, the
per-number cap) are enforced in memory by the process that claims: two engines on one SQLite
file would contend for the write lock and each pace at the full rate. A second engine on the same
file is therefore refused at start. PostgreSQL is made for several engines (they share the rate
through `engine_instances`), so nothing is locked there.

The guard is an exclusive, non-blocking `flock` on a lock file next to the database
(`<database>.engine.lock`), held for the engine's life. The kernel releases it when the process
exits in any way, `kill -9` included, so a crashed engine never leaves a stale lock behind. The
file itself is left in place (deleting it would let two processes lock two different files).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from dialer.errors import ConfigurationError, DialerError

LOCK_SUFFIX = ".engine.lock"


class EngineAlreadyRunning(DialerError):
    """Another engine holds this SQLite file."""


def lock_path(database_url: str) -> Path | None:
    """The lock file of a SQLite database file; None when there is nothing to guard: PostgreSQL
    (several engines are supported), an in-memory database (private to its process)."""
    try:
        url = make_url(database_url)
    except ArgumentError:
        return None  # the engine reports the bad URL itself
    if url.get_backend_name() != "sqlite":
        return None
    database = url.database or ""
    if database.startswith("file:"):  # URI filename: file:path?mode=...
        path_part, _, query = database[len("file:"):].partition("?")
        if parse_qs(query).get("mode") == ["memory"] or path_part in ("", ":memory:"):
            return None
        database = path_part
    if database in ("", ":memory:") or url.query.get("mode") == "memory":
        return None
    path = Path(database).expanduser()
    return path.parent.resolve() / (path.name + LOCK_SUFFIX)


class SingleWriterLock:
    """The held lock; `release()` (or process exit) frees it."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def _holder(fd: int) -> str:
    """' (pid N)' from the lock file, when the holder wrote it."""
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return ""
    return f" (pid {text})" if text.isdigit() else ""


def acquire(database_url: str) -> SingleWriterLock | None:
    """Take the engine lock of `database_url`'s SQLite file (None: nothing to lock). Raises
    EngineAlreadyRunning when another process holds it, ConfigurationError when the lock file
    cannot be created (a directory the engine could not write its database in either)."""
    path = lock_path(database_url)
    if path is None:
        return None
    try:
        # os.open: not inherited by child processes (O_CLOEXEC); the lock dies with us alone.
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except FileNotFoundError:
        return None  # no such folder, so no database: the engine says so in its own words
    except OSError as exc:
        raise ConfigurationError(
            f"cannot create the engine lock file {path}: {exc.strerror or exc}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        holder = _holder(fd)
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            database = path.name[: -len(LOCK_SUFFIX)]
            raise EngineAlreadyRunning(
                f"another `dialer run`{holder} is already using the SQLite database "
                f"{path.parent / database}: SQLite has one writer, so one engine per file "
                "(stop the other one, or use PostgreSQL to run several engines)") from None
        raise ConfigurationError(f"cannot lock {path}: {exc.strerror or exc}") from None
    with contextlib.suppress(OSError):  # who holds it, for the message above; best effort
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
    return SingleWriterLock(path, fd)


@contextlib.contextmanager
def single_writer(database_url: str) -> Iterator[SingleWriterLock | None]:
    """Hold the engine lock of `database_url` for the duration of the block."""
    lock = acquire(database_url)
    try:
        yield lock
    finally:
        if lock is not None:
            lock.release()
