"""Where a report goes: a file written atomically (a temp file renamed into place only when the
report is complete, so a failed export never leaves a truncated file behind), or stdout."""

from __future__ import annotations

import codecs
import io
import os
import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from campaigns.errors import ReportError
from campaigns.output_paths import check_output_path

#: Files a report must never replace: (path, how to name it), see `check_output_path`.
Protected = tuple[tuple[Path, str], ...]


def _unwritable(path: Path, exc: OSError) -> ReportError:
    reason = exc.strerror or str(exc)
    if not path.parent.exists():
        return ReportError(f"cannot write the report to {path}: the folder {path.parent} does not "
                           "exist (create it or choose another -o path)")
    if path.is_dir():
        return ReportError(f"cannot write the report to {path}: it is a folder (give a file name)")
    return ReportError(f"cannot write the report to {path}: {reason} (choose another -o path)")


@contextmanager
def atomic_file(path: Path, protect: Protected = ()) -> Iterator[Path]:
    """A temp file next to `path`; renamed to `path` when the block succeeds, removed otherwise.
    `path` is checked (`check_output_path`) before the temp file is made and again before the
    rename."""
    path = Path(path)
    if path.is_dir():
        raise ReportError(f"cannot write the report to {path}: it is a folder (give a file name)")
    check_output_path(path, "the report", protect)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.part")
    try:
        # 0o666 minus the umask, like any file the user creates (mkstemp would make it 0600).
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except OSError as exc:
        raise _unwritable(path, exc) from None
    try:
        yield tmp
        check_output_path(path, "the report", protect)
        try:
            os.replace(tmp, path)
        except OSError as exc:
            raise _unwritable(path, exc) from None
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def text_file(path: Path, protect: Protected = ()) -> Iterator[IO[str]]:
    """A UTF-8 text file (newline='' so that the csv module controls line endings)."""
    with atomic_file(path, protect) as tmp, open(tmp, "w", encoding="utf-8", newline="") as fh:
        yield fh


def stdout_text() -> IO[str]:
    """stdout, made UTF-8 when it can be."""
    stream: Any = sys.stdout
    if getattr(stream, "encoding", "utf-8").lower().replace("-", "") != "utf8" and hasattr(
        stream, "reconfigure"
    ):
        stream.reconfigure(encoding="utf-8")
    return stream


def stdout_bytes() -> IO[bytes]:
    """stdout as a binary stream (its buffer; a decoding adapter when it has none)."""
    sys.stdout.flush()
    buffer = getattr(sys.stdout, "buffer", None)
    return buffer if buffer is not None else TextToBytes(sys.stdout)  # type: ignore[return-value]


class TextToBytes(io.RawIOBase):
    """A binary stream over a text stream (stdout under a test harness may have no buffer)."""

    def __init__(self, text: IO[str]) -> None:
        self._text = text
        self._decoder = codecs.getincrementaldecoder("utf-8")()

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        self._text.write(self._decoder.decode(bytes(b)))
        return len(b)

    def flush(self) -> None:
        self._text.write(self._decoder.decode(b"", final=True))
        self._text.flush()
