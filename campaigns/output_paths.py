"""Where a user-named output file may go, checked before anything is written.

A report (`-o FILE`) or a rejects file (`--rejects FILE`) is written to a temp file next to the
target and renamed over it (`os.replace`). A rename replaces whatever is there, so the target is
checked first, and again just before the rename:

* it must not be the database: the SQLite file or its `-wal`, `-shm`, `-journal` companions
  (compared by resolved path and, when both exist, by device and inode: symlinks and hard links
  are caught too);
* it must not be an input of the same command (the contact file being imported);
* if something exists there it must be a regular file (a device such as /dev/null, a FIFO, a
  socket or a folder is refused: the rename would replace it by a regular file);
* its folder must exist: folders are never created silently.

`check_output_path` only looks (stat calls), so it is cheap to call twice.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path

from campaigns.errors import UnsafeOutput

#: Companion files SQLite keeps next to a database file.
SQLITE_COMPANIONS = ("", "-wal", "-shm", "-journal")


def sqlite_files(url: object) -> list[Path]:
    """The files of a SQLite database URL (the file and its companions); [] for anything else
    (PostgreSQL, an in-memory database, a URL that does not parse)."""
    from sqlalchemy.engine import URL, make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url) if isinstance(url, str) else url
        if not isinstance(parsed, URL):
            return []
        backend, database = parsed.get_backend_name(), parsed.database
    except (ArgumentError, AttributeError, ValueError):
        return []
    if backend != "sqlite" or not database or database == ":memory:" or database.startswith(
            "file:"):
        return []
    names = {database, os.path.realpath(database)}
    return [Path(name + suffix) for name in sorted(names) for suffix in SQLITE_COMPANIONS]


def protect_database(url: object) -> list[tuple[Path, str]]:
    """`check_output_path`'s `protect` entries for a database URL."""
    return [(p, f"a file of the database ({p.name})") for p in sqlite_files(url)]


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISFIFO(mode):
        return "a pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _same(a: Path, a_stat: os.stat_result | None, b: Path) -> bool:
    """True when `a` and `b` name the same file (resolved path, or same device and inode)."""
    try:
        if os.path.realpath(a) == os.path.realpath(b):
            return True
    except (OSError, ValueError):
        pass
    if a_stat is None:
        return False
    try:
        b_stat = os.stat(b)
    except (OSError, ValueError):
        return False
    return (a_stat.st_dev, a_stat.st_ino) == (b_stat.st_dev, b_stat.st_ino)


def _protected(protect: Iterable[tuple[Path, str]]) -> Iterator[tuple[Path, str]]:
    for path, label in protect:
        yield Path(path), label


def check_output_path(path: Path, what: str,
                      protect: Iterable[tuple[Path, str]] = ()) -> None:
    """Raise UnsafeOutput when writing `what` (e.g. "the report") to `path` by a rename could
    destroy data or needs a folder that does not exist. `protect` pairs each file that must
    survive with how to name it ("the database", "the input file")."""
    path = Path(path)
    shown = os.fsdecode(path)
    try:
        st: os.stat_result | None = os.stat(path)
    except FileNotFoundError:
        st = None
    except NotADirectoryError:
        raise UnsafeOutput(f"cannot write {what} to {shown}: a part of its folder path is a file, "
                           "not a folder") from None
    except (OSError, ValueError) as exc:
        raise UnsafeOutput(f"cannot write {what} to {shown}: "
                           f"{getattr(exc, 'strerror', None) or exc}") from None
    for other, label in _protected(protect):
        if _same(path, st, other):
            raise UnsafeOutput(f"refusing to write {what} to {shown}: it is {label} (choose "
                               "another file name)")
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise UnsafeOutput(f"refusing to write {what} to {shown}: it is {_kind(st.st_mode)}, "
                           "not a regular file (choose a file name)")
    parent = path.parent
    if not parent.is_dir():
        raise UnsafeOutput(f"cannot write {what} to {shown}: the folder {os.fsdecode(parent)} "
                           "does not exist (create it first or choose another path)")


def write_text_file(path: Path, text: str, what: str,
                    protect: Iterable[tuple[Path, str]] = ()) -> None:
    """Write a small text file the user named: checked (`check_output_path`), written to a temp
    file beside it and renamed into place. OSError from the file system propagates."""
    import tempfile

    protect = tuple(protect)
    check_output_path(path, what, protect)
    fd, tmp = tempfile.mkstemp(prefix=f".{Path(path).name}.", suffix=".part",
                               dir=os.fspath(Path(path).parent))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        check_output_path(path, what, protect)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
