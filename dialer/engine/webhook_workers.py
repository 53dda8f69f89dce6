"""Webhook receiver worker processes: `dialer run --webhook-workers N` (PostgreSQL only).

Why: in one process, receiving a webhook (HTTP, Ed25519 verification, the group-commit insert)
and processing it (finding the attempt, the state machine, the call flow) share one core, and on a
2-core machine that core tops out near 1,700 events/s. Receiving is what Telnyx waits for; the
processing only has to keep up on average. So with workers, N child processes each run the same
`Receiver` on one port (SO_REUSEPORT: the kernel spreads connections over them): verify, store
durably, answer. The engine processes what they stored exactly as it processes events stored by
another engine: from the `webhook_events` table (`status = 'pending'`, in id order).

The engine keeps its own receiver on `--port` (also `/healthz` and `/metrics`); the workers listen
on the webhook port, which is what dials put in `webhook_url` (unless `--public-url` is set).

Protocol: the engine writes one JSON line of settings on the worker's stdin and keeps stdin open:
the worker exits when it closes (the engine stopped, or was killed: no orphans). The worker
writes JSON lines on stdout: `{"ready": PORT}` once listening, `{"stored": 1}` after each commit
(the engine's event processor wakes at once, instead of at its next poll), and every half second
`{"answers": {result: count}, "latency": [secs, ...], "store_failed": bool}` for the engine's
metrics and its reconciliation grace (a worker that could not store answered 503: Telnyx will
deliver those webhooks again later).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

from dialer.errors import ConfigurationError

log = logging.getLogger("dialer.webhook_workers")

REPORT_SECS = 0.5
#: A worker that dies while the engine runs is started again after this, then (if starting
#: fails) after twice as long each time, up to the maximum.
RESTART_DELAY_SECS = 1.0
MAX_RESTART_DELAY_SECS = 30.0
#: The longest line the engine reads from a worker (a report holds one latency per answer).
MAX_LINE_BYTES = 16 * 1024 * 1024


@dataclass
class WorkerSettings:
    database_url: str
    host: str
    port: int
    public_key: str | None
    insecure_webhooks: bool


# ----------------------------------------------------------------------------- engine side
class WebhookWorkers:
    """Starts, watches, restarts and stops the worker processes of one engine."""

    def __init__(self, count: int, settings: WorkerSettings, *,
                 on_stored: Callable[[bool], None],
                 on_report: Callable[[dict[str, Any]], None],
                 on_lost: Callable[[], None]) -> None:
        self.count = count
        self.settings = settings
        self._on_stored = on_stored
        self._on_report = on_report
        #: A worker died or could not be started: webhooks it held, or that found the port
        #: closed, were refused (Telnyx delivers them again later).
        self._on_lost = on_lost
        self._procs: dict[int, asyncio.subprocess.Process] = {}
        #: Watchers (each also restarts its worker when it dies).
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = False
        self.port: int | None = None
        #: Workers started again after they died (each listening again).
        self.restarts = 0

    @property
    def alive(self) -> int:
        return sum(1 for p in self._procs.values() if p.returncode is None)

    async def start(self) -> int:
        """Start every worker, at once when the port is set; when it is 0 the first one picks
        it, then the others start. Returns the port."""
        first = 0 if self.settings.port else 1
        if first:
            await self._spawn(0)
        await asyncio.gather(*(self._spawn(i) for i in range(first, self.count)))
        if self.port is None:  # stopped meanwhile
            raise ConfigurationError("webhook workers stopped while starting")
        return self.port

    async def _spawn(self, index: int) -> None:
        settings = replace(self.settings, port=self.port or self.settings.port)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "dialer.engine.webhook_workers",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            limit=MAX_LINE_BYTES)
        self._procs[index] = proc  # no await since it was created: stop() always finds it
        if self._stopping:
            return
        assert proc.stdin is not None and proc.stdout is not None
        ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        watcher = asyncio.create_task(self._watch(index, proc, ready),
                                      name=f"webhook-worker-{index}")
        self._tasks.add(watcher)
        watcher.add_done_callback(self._tasks.discard)
        try:
            proc.stdin.write(json.dumps(asdict(settings)).encode() + b"\n")
            await proc.stdin.drain()
            port = await asyncio.wait_for(ready, timeout=60)
        except (OSError, asyncio.TimeoutError, RuntimeError):
            if proc.returncode is None:
                proc.kill()
            raise ConfigurationError(
                f"webhook worker {index} did not start (see its error above)") from None
        self.port = port
        log.info("webhook worker %d (pid %d) listening on %s:%d", index, proc.pid,
                 self.settings.host, port)

    async def _watch(self, index: int, proc: asyncio.subprocess.Process,
                     ready: asyncio.Future[int]) -> None:
        assert proc.stdout is not None
        try:
            while line := await proc.stdout.readline():
                self._handle(line, ready)
        except ValueError as exc:  # a line over the limit: this pipe cannot be trusted now
            log.error("webhook worker %d (pid %d): %s; stopping it", index, proc.pid, exc)
            proc.kill()
        code = await proc.wait()
        if not ready.done():
            ready.set_exception(RuntimeError(f"exited with {code}"))
        if ready.cancelled() or ready.exception() is not None:
            return  # it never started: whoever was starting it deals with that
        if self._stopping:
            return
        log.error("webhook worker %d (pid %d) exited with %s; starting it again", index,
                  proc.pid, code)
        self._on_lost()
        delay = RESTART_DELAY_SECS
        while True:
            await asyncio.sleep(delay)
            if self._stopping:
                return
            try:
                await self._spawn(index)
            except Exception as exc:
                self._on_lost()
                delay = min(2 * delay, MAX_RESTART_DELAY_SECS)
                log.error("webhook worker %d could not be started again (%s); next try in "
                          "%.0fs", index, exc, delay)
                continue
            self.restarts += 1
            return

    def _handle(self, line: bytes, ready: asyncio.Future[int]) -> None:
        try:
            msg = json.loads(line)
            if "stored" in msg:
                self._on_stored(True)  # of any type: processed at once
            elif "answers" in msg:
                self._on_report(msg)
            elif "ready" in msg and not ready.done():
                ready.set_result(int(msg["ready"]))
        except Exception:  # one bad line must not stop the reading (the worker would block)
            log.exception("webhook worker sent a line that could not be used: %.200r", line)

    async def stop(self, timeout: float = 10.0) -> None:
        """Close every worker's stdin: each stops listening, answers what it holds, exits
        (killed after `timeout`)."""
        self._stopping = True

        async def _end(proc: asyncio.subprocess.Process) -> None:
            if proc.stdin is not None and not proc.stdin.is_closing():
                proc.stdin.close()
            try:
                await asyncio.wait_for(proc.wait(), timeout)
            except asyncio.TimeoutError:
                proc.kill()
                await proc.wait()

        await asyncio.gather(*(_end(p) for p in list(self._procs.values())))
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # A restart that was starting a process when the stop began has registered it by now.
        await asyncio.gather(*(_end(p) for p in list(self._procs.values())
                               if p.returncode is None))


# ----------------------------------------------------------------------------- worker side
class _Tally:
    """What a worker answered since its last report."""

    def __init__(self) -> None:
        self.answers: Counter[str] = Counter()
        self.latency: list[float] = []
        self.store_failed = False

    def record(self, result: str, seconds: float) -> None:
        self.answers[result] += 1
        self.latency.append(round(seconds, 5))

    def take(self) -> dict[str, Any] | None:
        if not self.answers and not self.store_failed:
            return None
        report = {"answers": dict(self.answers), "latency": self.latency,
                  "store_failed": self.store_failed}
        self.answers, self.latency, self.store_failed = Counter(), [], False
        return report


class _Outbox:
    """Lines to the engine on stdout, never blocking the worker: while the engine is slow to
    read, lines wait in memory and repeated "stored" wake-ups fold into one sent after them;
    when the engine is gone, everything is dropped (its stdin closes too, and the lifeline then
    stops this worker: requests in flight still get their answer)."""

    MAX_PENDING = 8 * 1024 * 1024
    WAKE = b'{"stored":1}\n'

    def __init__(self, fd: int = 1) -> None:
        self._fd = fd
        self._pending = b""
        self._wake_owed = False
        self._gone = False
        os.set_blocking(fd, False)

    def send(self, msg: dict[str, Any]) -> None:
        if not self._gone and len(self._pending) < self.MAX_PENDING:
            self._pending += json.dumps(msg, separators=(",", ":")).encode() + b"\n"
        self.flush()

    def wake(self, urgent: bool = True) -> None:
        """Tell the engine that events were stored (it processes a worker's at once)."""
        if self._pending:
            self._wake_owed = True  # one wake-up after what is queued
        else:
            self._pending = self.WAKE
        self.flush()

    def flush(self) -> None:
        while self._pending and not self._gone:
            try:
                n = os.write(self._fd, self._pending)
            except BlockingIOError:
                return
            except OSError:  # the engine is gone
                self._gone, self._pending = True, b""
                return
            self._pending = self._pending[n:]
            if not self._pending and self._wake_owed:
                self._pending, self._wake_owed = self.WAKE, False


async def _serve(settings: WorkerSettings, stdin: asyncio.StreamReader) -> None:
    from campaigns.db.engine import create_engine, session_factory
    from dialer.engine.event_log import EventStore
    from dialer.engine.http_limits import start_site
    from dialer.engine.metrics import Metrics
    from dialer.engine.receiver import Receiver
    from dialer.telnyx.signatures import WebhookVerifier

    db = create_engine(settings.database_url, pool_pre_ping=False, pool_size=2, max_overflow=2)
    tally = _Tally()
    outbox = _Outbox()
    store = EventStore(session_factory(db), outbox.wake, keep_recent=False,
                       on_failure=lambda: setattr(tally, "store_failed", True))
    verifier = (None if settings.insecure_webhooks
                else WebhookVerifier(settings.public_key or ""))
    receiver = Receiver(store, verifier, Metrics(),
                        lambda: {"status": "ok", "worker": os.getpid()}, on_answer=tally.record)
    # http_limits: header/body timeouts, connection cap, one-line logs of bad requests.
    runner, port = await start_site(receiver.app(), settings.host, settings.port,
                                    reuse_port=True, shutdown_timeout=5)
    store.start()
    outbox.send({"ready": port})

    stop = asyncio.Event()

    async def _lifeline() -> None:
        while await stdin.read(4096):
            pass
        stop.set()

    async def _reporter() -> None:
        while True:
            await asyncio.sleep(REPORT_SECS)
            report = tally.take()
            if report:
                outbox.send(report)
            else:
                outbox.flush()

    tasks = [asyncio.create_task(_lifeline()), asyncio.create_task(_reporter())]
    await stop.wait()
    await runner.cleanup()  # stop listening; requests in flight get their answer first
    await store.stop()
    for task in tasks:
        task.cancel()
    report = tally.take()
    if report:
        outbox.send(report)
    os.set_blocking(1, True)  # the last lines, then exit
    outbox.flush()
    await db.dispose()


async def _worker_main() -> None:
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    settings = WorkerSettings(**json.loads(await stdin.readline()))
    await _serve(settings, stdin)


def main() -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format=f"%(asctime)s webhook-worker[{os.getpid()}] %(levelname)s "
                               "%(name)s: %(message)s")
    # The engine decides when its workers stop (it closes their stdin): a terminal's Ctrl-C or a
    # service manager's SIGTERM to the whole process group reaches them too, and they keep
    # answering until the engine has stopped them (SIGKILL still ends one at once).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    from dialer import aio

    started = time.monotonic()
    try:
        aio.run(_worker_main())
    except Exception:
        log.exception("webhook worker failed after %.1fs", time.monotonic() - started)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
