"""`dialer` with every dial's socket write recorded: a benchmark's view of when each engine sent.

    python bench/traced_engine.py SENDS_FILE <dialer arguments...>

Runs `dialer` as usual, its dial wire (the process that sends the dials) traced: each
`POST .../calls` gets the wall-clock time its body was written to the socket, keyed by its
`command_id`, and when the wire closes the pairs are written to SENDS_FILE as JSON lines (with
SENDS_FILE.late: how late after its slot each armed dial's send began, and SENDS_FILE.spread:
slot to write). A benchmark pairs them with the simulator's arrival stamps (its ledger) to tell
the engines' spread from the arrival side's.

    python bench/traced_engine.py --wire SENDS_FILE PARENT_PID

is the traced wire itself (the engine starts it).
"""

from __future__ import annotations

import atexit
import json
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

_sends: list[tuple[float, str]] = []
#: When each dial's request was handed to the client (wall clock): sent, not given up.
_begun: list[float] = []
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
        _slots[dial.command_id] = dial.at
        await original(self, dial)
    return send


def _stamped_dial(original: Any) -> Any:
    async def dial(self: Any, *a: Any, **kw: Any) -> Any:
        _begun.append(time.time())
        return await original(self, *a, **kw)
    return dial


def _dump(path: str) -> None:
    with open(path, "w") as f:
        for at, command_id in _sends:
            f.write(json.dumps({"at": at, "command_id": command_id}) + "\n")
    with open(path + ".late", "w") as f:
        json.dump(_lateness, f)
    with open(path + ".spread", "w") as f:
        json.dump([_writes[c] - at for c, at in _slots.items() if c in _writes], f)
    with open(path + ".begun", "w") as f:
        json.dump(_begun, f)


def trace_wire(out: str) -> None:
    """Engines started by this process from now on trace their dial wire into `out`."""
    from dialer.engine import wire as wire_module

    wire_module.WIRE_COMMAND = [sys.executable, str(Path(__file__).resolve()), "--wire", out]


def load_trace(out: str) -> dict[str, Any]:
    """What a traced wire wrote when it closed: `written` (socket writes, wall clock, with
    their command_ids), `begun` (requests handed to the client), `late` (each armed dial's
    check after its slot) and `spread` (slot to write), in seconds."""
    sends = [json.loads(line) for line in Path(out).read_text().splitlines()]
    return {"written": [(s["at"], s["command_id"]) for s in sends],
            **{k: json.loads(Path(out + "." + k).read_text())
               for k in ("begun", "late", "spread")}}


def _run_wire(out: str, parent_pid: str) -> None:
    from dialer.engine import wire_child
    from dialer.telnyx import client as client_module

    client_module.TelnyxClient.__init__ = _traced_init(  # type: ignore[method-assign]
        client_module.TelnyxClient.__init__)
    client_module.TelnyxClient.dial_encoded = _stamped_dial(  # type: ignore[method-assign]
        client_module.TelnyxClient.dial_encoded)
    wire_child.Sender._send = _timed_send(wire_child.Sender._send)  # type: ignore[method-assign]
    atexit.register(_dump, out)
    wire_child.main([parent_pid])


def _run_engine(out: str, argv: list[str]) -> int:
    from dialer.cli.main import main

    trace_wire(out)
    return main(argv)


if __name__ == "__main__":
    if sys.argv[1] == "--wire":
        _run_wire(sys.argv[2], sys.argv[3])
    else:
        sys.exit(_run_engine(sys.argv[1], sys.argv[2:]))
