"""`dialer` with every dial's socket write recorded: a benchmark's view of when each engine sent.

    python bench/traced_engine.py SENDS_FILE <dialer arguments...>

Runs `dialer` as usual; each `POST .../calls` gets the wall-clock time its body was written to
the socket, keyed by its `command_id`, and at exit the pairs are written to SENDS_FILE as JSON
lines. A benchmark pairs them with the simulator's arrival stamps (its ledger) to tell the
engines' spread from the arrival side's.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dialer.cli.main import main  # noqa: E402
from dialer.engine import wire as wire_module  # noqa: E402
from dialer.telnyx import client as client_module  # noqa: E402

_sends: list[tuple[float, str]] = []
#: How late each armed dial's send began after its slot (seconds), missed ones included.
_lateness: list[float] = []
#: Each dial's slot (time.monotonic()) and its write (the same clock), by command_id.
_slots: dict[str, float] = {}
_writes: dict[str, float] = {}


async def _on_chunk(_s: Any, _c: Any, params: Any) -> None:
    if params.method == "POST" and params.url.path.endswith("/calls"):
        at = time.time()
        try:
            command_id = json.loads(params.chunk).get("command_id", "")
        except ValueError:
            command_id = ""
        _sends.append((at, command_id))
        _writes[command_id] = time.monotonic()


def _traced_init(original: Any) -> Any:
    def init(self: Any, *a: Any, **kw: Any) -> None:
        original(self, *a, **kw)
        trace = aiohttp.TraceConfig()
        trace.on_request_chunk_sent.append(_on_chunk)
        self.trace_configs = [trace]
    return init


def _timed_send(original: Any) -> Any:
    """Where the wire decides (its send task's first step): how late after the slot."""
    async def send(self: Any, dial: Any) -> None:
        _lateness.append(time.monotonic() - dial.at)
        _slots[dial.job.command_id] = dial.at
        await original(self, dial)
    return send


def _dump(path: str) -> None:
    with open(path, "w") as f:
        for at, command_id in _sends:
            f.write(json.dumps({"at": at, "command_id": command_id}) + "\n")
    with open(path + ".late", "w") as f:
        json.dump(_lateness, f)
    with open(path + ".spread", "w") as f:
        json.dump([_writes[c] - at for c, at in _slots.items() if c in _writes], f)


if __name__ == "__main__":
    out = sys.argv[1]
    client_module.TelnyxClient.__init__ = _traced_init(  # type: ignore[method-assign]
        client_module.TelnyxClient.__init__)
    wire_module.DialWire._send = _timed_send(wire_module.DialWire._send)  # type: ignore[method-assign]
    if os.environ.get("BENCH_SWITCH_INTERVAL"):  # experiments: the wire's switch interval
        wire_module.SWITCH_INTERVAL_SECS = float(os.environ["BENCH_SWITCH_INTERVAL"])
    atexit.register(_dump, out)
    sys.exit(main(sys.argv[2:]))
