"""The dial wire's own process: it starts each dial in its slot, and does nothing else.

    python -m dialer.engine.wire_child PARENT_PID

Why a process: a dial that cannot start within `SEND_TOLERANCE_SECS` (8 ms) of its slot gives
the slot up, and in the engine's process the wire waited for the interpreter. The engine's main
thread verifies webhooks, runs transactions and the call flow; a thread of the same process gets
the interpreter only when that work lets go of it. Measured at 100 dials/s on this project's
2-core benchmark machine (docs/benchmarks.md, 2026-12-04): the wire's thread started 2.0% of the
dials more than 8 ms after their slots (given up: 95.8% of the rate), while a separate process
timing the same slots in the same run woke more than 8 ms late 0.07% of the time. The engine's
full garbage collections no longer stop the wire either.

Protocol (pickled frames, each a 4-byte length and the pickle, on stdin and stdout; only between
the engine and the child it started): the engine sends `WireSettings`, the child answers
`("ready",)`; then the engine sends `("arm", burst_limit, [WireDial, ...])`,
`("allow", claiming, running_campaign_ids)`, `("withdraw", [token, ...])` (dials not to send:
their numbers went on the DNC list) and `("close",)`, and the child answers
`("report", token, kind, result, error)` for every dial armed. When its stdin closes without
`close` (the engine was killed), the child exits at once and starts nothing more; it is also
killed with its parent (Linux: `PR_SET_PDEATHSIG`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import logging
import os
import pickle
import signal
import struct
import sys
from dataclasses import dataclass, field
from typing import Any, Literal

from asyncio_throttle import Throttler

from dialer.engine.slots import SEND_TOLERANCE_SECS, burst_limit
from dialer.telnyx.client import TelnyxClient
from dialer.telnyx.dial import DialResult
from dialer.telnyx.errors import SlotMissed

log = logging.getLogger("dialer.wire")

_HEADER = struct.Struct("!I")
#: Linux's prctl option: the signal the child gets when its parent dies.
_PR_SET_PDEATHSIG = 1

ReportKind = Literal["missed", "skipped", "expired", "withdrawn", "sent"]
#: A dial's result as it crosses the pipe: call_control_id, call_leg_id, call_session_id,
#: client_state, sends.
ResultTuple = tuple[str, str | None, str | None, str | None, int]


@dataclass(frozen=True)
class WireSettings:
    api_url: str
    api_key: str = field(repr=False)  # never in a log line
    #: The account's dials per second: connections for them are opened as the wire starts.
    account_cps: float | None = None


@dataclass(frozen=True)
class WireDial:
    """A dial given its slot, as the child needs it: its request validated and encoded by the
    engine (bytes cross the pipe for a fraction of a request object's cost)."""

    token: int
    campaign_id: int
    body: bytes
    command_id: str | None
    #: The slot, in `time.monotonic()` seconds (one clock for every process of the host).
    at: float
    #: A re-sent dial (after a crash) must reach Telnyx before this monotonic time.
    resend_deadline: float | None = None


def frame(message: Any) -> bytes:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(data)) + data


async def read_frame(reader: asyncio.StreamReader) -> Any:
    """The next message; `asyncio.IncompleteReadError` when the other side has gone."""
    (size,) = _HEADER.unpack(await reader.readexactly(_HEADER.size))
    return pickle.loads(await reader.readexactly(size))


class StartStampedThrottler(Throttler):
    """An asyncio-throttle `Throttler` whose log holds when each dial *started*, not when its
    slot was granted: every later grant is checked against when dials really began."""

    def started(self, at: float) -> None:
        """The dial granted last started at `at` (time.monotonic())."""
        if self._task_logs:
            self._task_logs[-1] = max(self._task_logs[-1], at)


def _portable(error: BaseException) -> BaseException:
    """The error as the engine can receive it (the client's errors pickle; anything else is
    described)."""
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:
        return RuntimeError(f"{type(error).__name__}: {error}")
    return error


#: After this long without a dial armed, the pool's connections may have closed (aiohttp closes
#: idle ones after 30 s): the next dials open them ahead again.
POOL_IDLE_SECS = 20.0
#: Connections opened ahead per dial allowed in 100 ms: about half a second of dials in flight
#: (half as many again each time a dial still had to open one).
CONNECTIONS_PER_BURST = 5
MAX_CONNECTIONS_AHEAD = 256


class Sender:
    """Keeps each armed dial's time and sends it: the checks at its slot (still allowed, not too
    late, the local burst guard) and the request. The engine decides everything else."""

    def __init__(self, client: TelnyxClient, write: Any) -> None:
        self._client = client
        self._write = write
        self._burst_limit = 0
        #: The local last line: no more than `burst_limit` dials start in any 100 ms.
        self._guard = StartStampedThrottler(rate_limit=1, period=0.1, retry_interval=0.002)
        self._claiming = True
        self._running: frozenset[int] = frozenset()
        self._withdrawn: set[int] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        #: Opening connections ahead (see `arm`), and when dials were last armed.
        self._warming: asyncio.Task[int] | None = None
        self._last_armed = float("-inf")
        #: Connections last opened ahead, and the client's count of dials that had to open one.
        self._ahead = 0
        self._new_connection_dials = 0

    def allow(self, claiming: bool, running: frozenset[int]) -> None:
        self._claiming, self._running = claiming, running

    def withdraw(self, tokens: list[int]) -> None:
        """These armed dials are not sent (reported `withdrawn`), unless already on their way."""
        self._withdrawn.update(tokens)

    def arm(self, burst_limit: int, dials: list[WireDial]) -> None:
        if burst_limit != self._burst_limit:
            self._burst_limit = burst_limit
            self._guard = StartStampedThrottler(rate_limit=burst_limit, period=0.1,
                                                retry_interval=0.002)
        loop = asyncio.get_running_loop()
        paused = loop.time() - self._last_armed > POOL_IDLE_SECS
        grew = self._client.new_connection_dials > self._new_connection_dials
        if (paused or grew) and self._warming is None:
            # The first dials, the first after a pause, or a dial that had to open a connection
            # (the pool is smaller than the dials in flight): connections are opened while the
            # slots are still a reservation's lead ahead, so no dial waits for a handshake (TLS
            # to Telnyx) in its slot and arrives late by it (`TelnyxClient.open_connections`).
            self._new_connection_dials = self._client.new_connection_dials
            self._open_ahead(max(CONNECTIONS_PER_BURST * burst_limit,
                                 self._ahead * 3 // 2 if grew and not paused else 0))
        self._last_armed = loop.time()
        for dial in dials:
            loop.call_at(dial.at, self._fire, dial)

    def warm(self, account_cps: float) -> None:
        """Open connections for the account's rate as the wire starts (before the first dials,
        so their slots find the handshakes done)."""
        self._open_ahead(CONNECTIONS_PER_BURST * burst_limit(account_cps))

    def _open_ahead(self, count: int) -> None:
        self._ahead = min(MAX_CONNECTIONS_AHEAD, count)
        self._warming = asyncio.get_running_loop().create_task(
            self._client.open_connections(self._ahead))
        self._warming.add_done_callback(self._warmed)

    def _warmed(self, task: asyncio.Task[int]) -> None:
        self._warming = None
        if not task.cancelled() and task.exception() is not None:
            log.warning("dial wire: connections not opened ahead: %s", task.exception())

    def stop_warming(self) -> None:
        if self._warming is not None:
            self._warming.cancel()

    async def wait_sent(self) -> None:
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _fire(self, dial: WireDial) -> None:
        task = asyncio.get_running_loop().create_task(self._send(dial))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _report(self, dial: WireDial, kind: ReportKind, result: DialResult | None = None,
                error: BaseException | None = None) -> None:
        self._withdrawn.discard(dial.token)  # asked back too late, or done with
        sent: ResultTuple | None = None
        if result is not None:
            sent = (result.call_control_id, result.call_leg_id, result.call_session_id,
                    result.client_state, result.sends)
        self._write(("report", dial.token, kind, sent, error))

    async def _send(self, dial: WireDial) -> None:
        # Checked in the task that writes the request, not a loop turn earlier: the less time
        # between the check and the write, the less a late write can bunch.
        loop = asyncio.get_running_loop()
        if dial.token in self._withdrawn:
            return self._report(dial, "withdrawn")
        if not (self._claiming and dial.campaign_id in self._running):
            return self._report(dial, "skipped")
        if loop.time() - dial.at > SEND_TOLERANCE_SECS:
            return self._report(dial, "missed")
        guard = self._guard
        await guard.acquire()
        if loop.time() - dial.at > SEND_TOLERANCE_SECS:  # the guard held it back
            return self._report(dial, "missed")
        window = None
        if dial.resend_deadline is not None:
            window = dial.resend_deadline - loop.time()
            if window <= 0:
                return self._report(dial, "expired")
        guard.started(loop.time())
        try:
            # One send: a re-send (after a 5xx or a lost answer) takes a slot of its own from
            # the engine, like any dial, so it never arrives outside the schedule.
            result = await self._client.dial_encoded(
                dial.body, dial.command_id, resend_window_secs=window,
                write_by=dial.at + SEND_TOLERANCE_SECS, max_sends=1)
        except SlotMissed:  # checked again at the socket write: this core was taken meanwhile
            return self._report(dial, "missed")
        except Exception as exc:  # the engine tells what it means
            return self._report(dial, "sent", error=_portable(exc))
        self._report(dial, "sent", result=result)


async def serve(parent_pid: int, out_fd: int) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**26)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader),
                                 os.fdopen(0, "rb", buffering=0))
    transport, protocol = await loop.connect_write_pipe(
        asyncio.streams.FlowControlMixin, os.fdopen(out_fd, "wb", buffering=0))
    writer = asyncio.StreamWriter(transport, protocol, None, loop)

    def write(message: Any) -> None:
        writer.write(frame(message))

    try:
        settings: WireSettings = await read_frame(reader)
    except asyncio.IncompleteReadError:
        return
    client = TelnyxClient(settings.api_url, settings.api_key)
    sender = Sender(client, write)
    if settings.account_cps:
        sender.warm(settings.account_cps)
    # What start-up allocated is never collected again: the collections while dials are due
    # walk only what is new (short pauses).
    gc.collect()
    gc.freeze()
    write(("ready",))
    while True:
        try:
            message = await read_frame(reader)
        except asyncio.IncompleteReadError:
            # The engine is gone (killed): start nothing more, whatever is armed.
            os._exit(0)
        kind = message[0]
        if kind == "arm":
            sender.arm(message[1], message[2])
        elif kind == "allow":
            sender.allow(message[1], message[2])
        elif kind == "withdraw":
            sender.withdraw(message[1])
        elif kind == "close":
            sender.stop_warming()
            await sender.wait_sent()
            await client.close()
            write(("closed",))
            with contextlib.suppress(ConnectionError):
                await writer.drain()
            return
        else:  # pragma: no cover - the engine sends only the above
            log.error("dial wire: unknown message %r", kind)


def _die_with(parent_pid: int) -> None:
    """Killed when the engine dies, even before its pipe's end is noticed (Linux)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:  # it died before the line above
        os._exit(0)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    parent_pid = int(args[-1])
    _die_with(parent_pid)
    # Frames go out on a copy of stdout; stdout itself goes to stderr, so a stray print can
    # never break a frame.
    out_fd = os.dup(1)
    os.dup2(2, 1)
    # The engine stops the wire with `close`; a Ctrl-C at the terminal reaches the whole
    # process group, and the engine decides.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(serve(parent_pid, out_fd))


if __name__ == "__main__":
    main()
