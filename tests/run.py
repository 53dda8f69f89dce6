"""The whole suite in two phases: `python -m tests.run [-n WORKERS] [pytest options]`.

1. Every test not marked `timing`, in parallel on WORKERS pytest-xdist workers (default 3:
   most of the suite waits on simulated calls, timers and restarts rather than computing), each
   worker with its own throwaway PostgreSQL server.
2. The `timing` tests, one at a time with the machine to themselves: they check the dial rate
   where Telnyx counts it (arrival times at the simulator), which other work running beside
   them would blur.

Options after `-n` go to both phases (e.g. `-q`, `-x`, `--durations=20`); the exit status is
the first phase's failure, else the second's. `pytest -m fast` and plain `pytest` (everything
in one process) work as before.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

DEFAULT_WORKERS = 3


def _pytest(*args: str) -> int:
    cmd = [sys.executable, "-m", "pytest", *args]
    print("+ " + " ".join(cmd), flush=True)
    started = time.monotonic()
    code = subprocess.call(cmd)
    print(f"(exit status {code} after {time.monotonic() - started:.0f} s)", flush=True)
    return code


def main(argv: list[str]) -> int:
    workers = os.environ.get("DIALER_TEST_WORKERS", str(DEFAULT_WORKERS))
    args = list(argv)
    if args[:1] == ["-n"] and len(args) >= 2:
        workers, args = args[1], args[2:]
    elif args and args[0].startswith("-n") and args[0][2:].isdigit():
        workers, args = args[0][2:], args[1:]
    parallel = _pytest("-n", workers, "--dist", "loadgroup", "-m", "not timing", *args)
    serial = _pytest("-m", "timing", *args)
    # 5: no test selected in that phase (options that picked tests of the other phase only).
    codes = [c for c in (parallel, serial) if c != 5] or [5]
    return next((c for c in codes if c != 0), 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
