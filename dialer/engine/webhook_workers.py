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
from dataclasses import asdict, dataclass
from typing import Any

log = logging.getLogger("dialer.webhook_workers")

REPORT_SECS = 0.5
#: A worker that dies while the engine runs is started again, at most this often.
RESTART_DELAY_SECS = 1.0


@dataclass
class WorkerSettings:
    database_url: str
    host: str
    port: int
    public_key: str | None
    insecure_webhooks: bool


# ----------------------------------------------------------------------------- engine side
class WebhookWorkers:
    """Starts, watches and stops the worker processes of one engine."""

    def __init__(self, count: int, settings: WorkerSettings, *,
                 on_stored: Callable[[], None],
                 on_report: Callable[[dict[str, Any]], None]) -> None:
        self.count = count
        self.settings = settings
        self._on_stored = on_stored
        self._on_report = on_report
        self._procs: dict[int, asyncio.subprocess.Process] = {}
        self._watchers: dict[int, asyncio.Task[None]] = {}
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
        assert self.port is not None
        return self.port

    async def _spawn(self, index: int) -> None:
        settings = WorkerSettings(**{**asdict(self.settings),
                                     "port": self.port or self.settings.port})
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "dialer.engine.webhook_workers",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(json.dumps(asdict(settings)).encode() + b"\n")
        await proc.stdin.drain()
        ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._procs[index] = proc
        self._watchers[index] = asyncio.create_task(self._watch(index, proc, ready),
                                                    name=f"webhook-worker-{index}")
        try:
            port = await asyncio.wait_for(ready, timeout=60)
        except (asyncio.TimeoutError, RuntimeError):
            from dialer.errors import ConfigurationError

            raise ConfigurationError(
                f"webhook worker {index} did not start (see its error above)") from None
        self.port = port
        log.info("webhook worker %d (pid %d) listening on %s:%d", index, proc.pid,
                 self.settings.host, port)

    async def _watch(self, index: int, proc: asyncio.subprocess.Process,
                     ready: asyncio.Future[int]) -> None:
        assert proc.stdout is not None
        while line := await proc.stdout.readline():
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if "stored" in msg:
                self._on_stored()
            elif "answers" in msg:
                self._on_report(msg)
            elif "ready" in msg and not ready.done():
                ready.set_result(int(msg["ready"]))
        code = await proc.wait()
        if not ready.done():
            ready.set_exception(RuntimeError(f"exited with {code}"))
            return
        if self._stopping:
            return
        log.error("webhook worker %d (pid %d) exited with %s; starting it again", index,
                  proc.pid, code)
        await asyncio.sleep(RESTART_DELAY_SECS)
        if not self._stopping:
            try:
                await self._spawn(index)
                self.restarts += 1
            except Exception as exc:  # keep the engine running on its own receiver
                log.error("webhook worker %d could not be started again: %s", index, exc)

    async def stop(self, timeout: float = 10.0) -> None:
        """Close every worker's stdin: each stops listening, answers what it holds, exits."""
        self._stopping = True
        for proc in self._procs.values():
            if proc.stdin is not None and not proc.stdin.is_closing():
                proc.stdin.close()
        for proc in self._procs.values():
            try:
                await asyncio.wait_for(proc.wait(), timeout)
            except asyncio.TimeoutError:
                proc.kill()
                await proc.wait()
        for task in self._watchers.values():
            task.cancel()
        await asyncio.gather(*self._watchers.values(), return_exceptions=True)


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


def _emit(msg: dict[str, Any]) -> None:
    """A line to the engine; dropped when the engine is gone (its stdin closes too, and the
    lifeline then stops this worker: requests in flight still get their answer)."""
    try:
        os.write(1, json.dumps(msg, separators=(",", ":")).encode() + b"\n")
    except OSError:
        pass


async def _serve(settings: WorkerSettings, stdin: asyncio.StreamReader) -> None:
    from aiohttp import web

    from campaigns.db.engine import create_engine, session_factory
    from dialer.engine.metrics import Metrics
    from dialer.engine.receiver import EventStore, Receiver
    from dialer.telnyx.signatures import WebhookVerifier

    db = create_engine(settings.database_url, pool_pre_ping=False, pool_size=2, max_overflow=2)
    tally = _Tally()
    store = EventStore(session_factory(db), lambda: _emit({"stored": 1}), keep_recent=False,
                       on_failure=lambda: setattr(tally, "store_failed", True))
    verifier = (None if settings.insecure_webhooks
                else WebhookVerifier(settings.public_key or ""))
    receiver = Receiver(store, verifier, Metrics(),
                        lambda: {"status": "ok", "worker": os.getpid()}, on_answer=tally.record)
    runner = web.AppRunner(receiver.app(), access_log=None, shutdown_timeout=5)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port, reuse_port=True)
    await site.start()
    server = getattr(site, "_server", None)
    port = server.sockets[0].getsockname()[1] if server and server.sockets else settings.port
    store.start()
    _emit({"ready": port})

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
                _emit(report)

    tasks = [asyncio.create_task(_lifeline()), asyncio.create_task(_reporter())]
    await stop.wait()
    await runner.cleanup()  # stop listening; requests in flight get their answer first
    await store.stop()
    for task in tasks:
        task.cancel()
    report = tally.take()
    if report:
        _emit(report)
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
