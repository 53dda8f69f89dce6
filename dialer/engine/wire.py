"""The dial wire: a thread with its own event loop that starts each dial in its slot.

Why a thread: the engine's main loop also verifies webhooks, runs transactions and the call flow.
A stretch of that work holds the loop for 5-30 ms at a time under load, and a dial that cannot
start within `SEND_TOLERANCE_SECS` of its slot must give the slot up (late dials are never
bunched). Measured at 300 dials/s on this project's 2-core benchmark machine, a 2 ms timer in the
main loop woke more than 8 ms late 37% of the time, in a thread of the same process 6% of the
time (docs/benchmarks.md, 2026-12-04): most slots were lost to the loop, not to the machine.
The wire's loop does nothing but wait for slots and talk HTTP, and the interpreter switches
threads every `SWITCH_INTERVAL_SECS` (2 ms), so a slot's timer gets the interpreter within
about that while the main loop is busy.

The main loop decides everything: which dial takes which slot (`arm`), whether a dial may still
go (`allowed`, read at the slot: a paused campaign or a stopping engine sends nothing more), and
what a result means (`report`, called back on the main loop). The wire only keeps time and
sends: it touches no database and no engine state.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from dialer.aio import loop_in_thread
from dialer.engine.claims import DialJob
from dialer.engine.slots import SEND_TOLERANCE_SECS
from dialer.telnyx.client import TelnyxClient
from dialer.telnyx.dial import DialRequest, DialResult

#: How often the interpreter lets another thread run (the default is 5 ms): the wire's timers
#: wait at most about this long for a busy main thread, well within `SEND_TOLERANCE_SECS`.
#: Shorter costs the main loop: measured at 100 calls/s with a script, the first words' p99
#: was 3.2 s at 0.5 ms, 2.2 s at 2 ms, 2.1 s at 5 ms; at 300 dials/s 267 and 460 slots missed
#: at 0.5 and 2 ms (docs/benchmarks.md, 2026-12-04).
SWITCH_INTERVAL_SECS = 0.002


@dataclass(eq=False)
class ArmedDial:
    """A claimed dial given its slot."""

    job: DialJob
    #: Builds the request (raises on a campaign setting Telnyx would refuse).
    request: Callable[[], DialRequest]
    #: The slot, in `time.monotonic()` seconds.
    at: float
    #: A re-sent dial (after a crash) must reach Telnyx before this monotonic time.
    resend_deadline: float | None = None


ReportKind = Literal["missed", "skipped", "expired", "sent"]


@dataclass
class WireReport:
    dial: ArmedDial
    #: missed: too late for its slot; skipped: not allowed any more at its slot; expired: a
    #: re-send past its window; sent: `result` or `error` says how the request went.
    kind: ReportKind
    result: DialResult | None = None
    error: BaseException | None = None


class DialWire:
    def __init__(self, client: TelnyxClient, *, allowed: Callable[[int], bool],
                 report: Callable[[WireReport], None], guard: Callable[[], Awaitable[None]],
                 started: Callable[[], None]) -> None:
        self._client = client
        self._allowed = allowed
        self._report_main = report
        #: The local burst guard (awaited in this loop) and its "a dial started now".
        self._guard = guard
        self._started = started
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._main: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        #: No dial starts before this (time.monotonic()): see `hold`.
        self._held_until = 0.0

    def start(self) -> None:
        """Start the thread (from the main loop) and wait until its loop runs."""
        self._main = asyncio.get_running_loop()
        sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL_SECS))
        # The standard loop: its time() is time.monotonic(), the slots' clock.
        self._loop, self._thread = loop_in_thread("dial-wire")

    def arm(self, dials: list[ArmedDial]) -> None:
        """Send each dial in its slot (thread-safe)."""
        if dials and self._loop is not None:
            self._loop.call_soon_threadsafe(self._arm, dials)

    async def close(self) -> None:
        """Stop the thread once what it sends has finished (callers wait for that first)."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or not thread.is_alive():
            return
        done = asyncio.run_coroutine_threadsafe(self._client.close(), loop)
        await asyncio.wrap_future(done)
        loop.call_soon_threadsafe(loop.stop)
        await asyncio.to_thread(thread.join, 10)
        self._loop = None

    # ---------------------------------------------------------------- in the wire's thread
    def _arm(self, dials: list[ArmedDial]) -> None:
        loop = asyncio.get_running_loop()
        for dial in dials:
            loop.call_at(dial.at, self._fire, dial)

    def _fire(self, dial: ArmedDial) -> None:
        task = asyncio.get_running_loop().create_task(self._send(dial))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, dial: ArmedDial) -> None:
        # Checked in the task that writes the request, not a loop turn earlier: the less time
        # between the check and the write, the less a late write can bunch.
        loop = asyncio.get_running_loop()
        if not self._allowed(dial.job.campaign_id):
            return self._report(WireReport(dial, "skipped"))
        if loop.time() - dial.at > SEND_TOLERANCE_SECS or loop.time() < self._held_until:
            return self._report(WireReport(dial, "missed"))
        await self._guard()
        if loop.time() - dial.at > SEND_TOLERANCE_SECS:  # the guard held it back
            return self._report(WireReport(dial, "missed"))
        window = None
        if dial.resend_deadline is not None:
            window = dial.resend_deadline - loop.time()
            if window <= 0:
                return self._report(WireReport(dial, "expired"))
        self._started()
        try:
            result = await self._client.dial(dial.request(), resend_window_secs=window)
        except Exception as exc:  # the main loop tells what it means
            return self._report(WireReport(dial, "sent", error=exc))
        self._report(WireReport(dial, "sent", result=result))

    def hold(self, secs: float) -> None:
        """Start no dial for `secs` (thread-safe): their slots are given up, as late ones are.
        For a full garbage collection, which stops this thread too: a dial checked just before
        it would be written after it, late, next to the dials after it."""
        self._held_until = time.monotonic() + secs

    def _report(self, report: WireReport) -> None:
        assert self._main is not None
        try:
            self._main.call_soon_threadsafe(self._report_main, report)
        except RuntimeError:  # the main loop is closed: the engine is gone
            pass
