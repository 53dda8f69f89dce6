"""The dial wire: a process of its own (`wire_child`) that starts each dial in its slot.

Why a process, not the engine's main loop or a thread of it: the main loop also verifies
webhooks, runs transactions and the call flow, and a stretch of that work holds it (and the
interpreter) for 5-30 ms at a time under load, while a dial that cannot start within
`SEND_TOLERANCE_SECS` of its slot must give the slot up (late dials are never bunched).
Measured on this project's 2-core benchmark machine (docs/benchmarks.md, 2026-12-04): at 300
dials/s a 2 ms timer in the main loop woke more than 8 ms late 37% of the time, in a thread 6%;
at 100 dials/s the wire's thread started 2.0% of the dials more than 8 ms late, a separate
process 0.07%.

The main loop decides everything: which dial takes which slot (`arm`, the request built here),
which campaigns may still dial (`allow`: the wire checks it at the slot, so a paused campaign or
a stopping engine sends nothing more), and what a result means (`report`, called on the main
loop). The wire only keeps time and sends: it touches no database and no engine state. If it
dies while the engine runs, the engine stops (`WireLost`): what it had armed may or may not have
been sent, and recovery settles that after the restart, as after a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass

from dialer.engine.claims import DialJob
from dialer.engine.wire_child import (
    ReportKind,
    WireDial,
    WireSettings,
    frame,
    read_frame,
)
from dialer.errors import DialerError
from dialer.telnyx.client import encode_dial
from dialer.telnyx.dial import DialRequest, DialResult

__all__ = ["ArmedDial", "DialWire", "ReportKind", "WireLost", "WireReport", "WireSettings"]

log = logging.getLogger("dialer.wire")

#: The wire's process (a benchmark puts its own tracing one here).
WIRE_COMMAND = [sys.executable, "-m", "dialer.engine.wire_child"]
#: How long the wire's process may take to start, and to finish what it sends when closed.
START_TIMEOUT_SECS = 30.0
CLOSE_TIMEOUT_SECS = 20.0


class WireLost(DialerError):
    """The dial wire's process ended while the engine ran."""


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


@dataclass
class WireReport:
    dial: ArmedDial
    #: missed: too late for its slot; skipped: not allowed any more at its slot; expired: a
    #: re-send past its window; sent: `result` or `error` says how the request went.
    kind: ReportKind
    result: DialResult | None = None
    error: BaseException | None = None


class DialWire:
    def __init__(self, settings: WireSettings, *,
                 report: Callable[[WireReport], None]) -> None:
        self._settings = settings
        self._report_main = report
        self._proc: asyncio.subprocess.Process | None = None
        self._tokens = itertools.count(1)
        #: What was armed and not reported yet, by token.
        self._armed: dict[int, ArmedDial] = {}
        #: Which campaigns may dial (claiming, running ids): as last set, and as last sent.
        self._allowed: tuple[bool, frozenset[int]] = (True, frozenset())
        self._allowed_sent: tuple[bool, frozenset[int]] | None = None
        self._closing = False

    @property
    def pid(self) -> int | None:
        """The wire's process, while it runs."""
        return self._proc.pid if self._proc is not None and self._proc.returncode is None else None

    async def start(self) -> None:
        """Start the wire's process and wait until it is ready to send."""
        self._proc = proc = await asyncio.create_subprocess_exec(
            *WIRE_COMMAND, str(os.getpid()),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=2**26)
        assert proc.stdout is not None
        self._write(self._settings)
        try:
            ready = await asyncio.wait_for(read_frame(proc.stdout), START_TIMEOUT_SECS)
        except (asyncio.IncompleteReadError, asyncio.TimeoutError) as exc:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            raise WireLost("the dial wire's process did not start") from exc
        if ready != ("ready",):
            raise WireLost(f"the dial wire's process said {ready!r} at start")
        self._send_allowed()

    async def watch(self) -> None:
        """Take the reports until the wire is closed; `WireLost` if its process ends before."""
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        while True:
            try:
                message = await read_frame(proc.stdout)
            except asyncio.IncompleteReadError:
                break
            if message[0] == "report":
                _, token, kind, sent, error = message
                dial = self._armed.pop(token)
                result = None
                if sent is not None:
                    cc, leg, session, client_state, sends = sent
                    result = DialResult(cc, leg, session, client_state, raw={}, sends=sends)
                self._report_main(WireReport(dial, kind, result, error))
            elif message[0] == "closed":
                break
        if not self._closing:
            code = await proc.wait()
            raise WireLost(f"the dial wire's process ended (exit code {code}) with "
                           f"{len(self._armed)} dial(s) armed")

    def allow(self, claiming: bool, running: frozenset[int]) -> None:
        """Which campaigns may dial at their slots (sent when it changed; kept until the
        process runs if it does not yet)."""
        self._allowed = (claiming, running)
        if self.pid is not None:
            self._send_allowed()

    def _send_allowed(self) -> None:
        if self._allowed != self._allowed_sent:
            self._allowed_sent = self._allowed
            self._write(("allow", *self._allowed))

    def withdraw(self, numbers: set[str]) -> int:
        """Armed dials to these numbers are not sent (each reported `withdrawn`, or as usual if
        it is already on its way); returns how many were asked back."""
        tokens = [t for t, d in self._armed.items() if d.job.phone in numbers]
        if tokens and self.pid is not None:
            self._write(("withdraw", tokens))
        return len(tokens)

    def arm(self, dials: list[ArmedDial], burst_limit: int) -> None:
        """Send each dial in its slot; no more than `burst_limit` start in any 100 ms."""
        loop = asyncio.get_running_loop()
        armed = []
        for dial in dials:
            try:
                request = dial.request()
                body = encode_dial(request)
            except Exception as exc:  # the main loop tells what it means, as for a send's
                loop.call_soon(self._report_main, WireReport(dial, "sent", error=exc))
                continue
            token = next(self._tokens)
            self._armed[token] = dial
            armed.append(WireDial(token, dial.job.campaign_id, body, request.command_id,
                                  dial.at, dial.resend_deadline))
        if armed:
            self._write(("arm", burst_limit, armed))

    async def close(self) -> None:
        """Stop the process once what it sends has finished (callers wait for that first)."""
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        self._closing = True
        with contextlib.suppress(ConnectionError):
            self._write(("close",))
            assert proc.stdin is not None
            await proc.stdin.drain()
        try:
            await asyncio.wait_for(proc.wait(), CLOSE_TIMEOUT_SECS)
        except asyncio.TimeoutError:
            log.error("the dial wire's process did not stop: killing it")
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()

    def _write(self, message: object) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        self._proc.stdin.write(frame(message))
