"""Webhook delivery: signed POSTs, one ordered queue per call, retries with backoff, and the
delivery faults (duplicate, reorder, delay, drop).

Each call has an `Outbox`; a worker task exists only while the outbox has something to send, so
idle calls cost no task. A failing receiver blocks only the head of each call's queue, which is
how a real platform keeps a call's events in order while the receiver restarts. Retry delays are
wall-clock (not divided by the simulator's speed): an engine that is down for several seconds
must find its webhooks waiting when it comes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from dialer.simulator.config import FaultConfig, SimulatorConfig
from dialer.simulator.ledger import LedgerCall, Stats

log = logging.getLogger(__name__)

Signer = Callable[[bytes], dict[str, str]]


@dataclass(eq=False)
class Outgoing:
    """One event on its way to one URL. `record` is the event's entry in the call's ledger."""

    data: dict[str, Any]
    url: str
    call: LedgerCall
    record: dict[str, Any]
    duplicate: bool = False
    delay: float = 0.0


@dataclass(eq=False)
class Outbox:
    """The delivery queue of one call."""

    queue: deque[Outgoing] = field(default_factory=deque)
    held: list[Outgoing] = field(default_factory=list)
    task: asyncio.Task[None] | None = None
    #: Releases held events if the call's next event is slow to come (reorder_hold_secs).
    release: asyncio.TimerHandle | None = None


class WebhookDispatcher:
    def __init__(
        self,
        config: SimulatorConfig,
        signer: Signer,
        stats: Stats,
        faults: Callable[[], FaultConfig],
    ) -> None:
        self._config = config
        self._sign = signer
        self._stats = stats
        self._faults = faults
        self._rng = random.Random()  # faults and jitter: deliberately not tied to the seed
        self._session: aiohttp.ClientSession | None = None
        self._semaphore = asyncio.Semaphore(config.webhook_concurrency)
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=self._config.webhook_concurrency)
        timeout = aiohttp.ClientTimeout(total=self._config.webhook_timeout_secs)
        self._session = aiohttp.ClientSession(connector=connector, timeout=timeout)

    async def stop(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def pending_tasks(self) -> int:
        return len(self._tasks)

    def submit(self, outbox: Outbox, item: Outgoing, *, final: bool) -> None:
        """Queue one event of a call, applying the delivery faults. `final` marks the call's last
        event: it is never held back, and it releases any events that were."""
        faults = self._faults()
        rng = self._rng
        if faults.drop and rng.random() < faults.drop:
            item.record["delivery"] = "dropped"
            item.call.deliveries_dropped += 1
            self._stats.webhooks_dropped += 1
            if final:
                self._flush_held(outbox)
            return
        if faults.duplicate and rng.random() < faults.duplicate:
            item.duplicate = True
        if faults.delay and rng.random() < faults.delay:
            item.delay = faults.delay_secs
            self._stats.webhooks_delayed += 1
        if not final and faults.reorder and rng.random() < faults.reorder:
            outbox.held.append(item)  # goes out after the call's next event
            self._stats.webhooks_reordered += 1
            if outbox.release is None:
                # ...or soon, if that event waits for an answer to this one (a `call.answered`
                # held until the hangup would keep a dialer from ever speaking).
                outbox.release = asyncio.get_running_loop().call_later(
                    faults.reorder_hold_secs, self._flush_held, outbox)
            return
        outbox.queue.append(item)
        self._flush_held(outbox)

    def _flush_held(self, outbox: Outbox) -> None:
        if outbox.release is not None:
            outbox.release.cancel()
            outbox.release = None
        if self._session is None:
            return  # stopped
        if outbox.held:
            outbox.queue.extend(outbox.held)
            outbox.held.clear()
        if outbox.queue and outbox.task is None:
            task = asyncio.get_running_loop().create_task(self._drain(outbox))
            outbox.task = task
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _drain(self, outbox: Outbox) -> None:
        try:
            while outbox.queue:
                await self._deliver(outbox.queue[0])
                outbox.queue.popleft()
        finally:
            outbox.task = None

    def _backoff(self, attempt: int) -> float:
        base = self._config.webhook_retry_secs * (2 ** min(attempt - 1, 30))
        delay = min(base, self._config.webhook_retry_max_secs)
        return delay * self._rng.uniform(0.9, 1.1)

    async def _deliver(self, item: Outgoing) -> None:
        if item.delay:
            await asyncio.sleep(item.delay)
        attempts = self._config.webhook_max_attempts
        for attempt in range(1, attempts + 1):
            if await self._post(item, attempt):
                item.record["delivery"] = "ok"
                if item.duplicate:
                    self._stats.webhooks_duplicated += 1
                    await self._post(item, attempt)
                return
            if attempt < attempts:
                await asyncio.sleep(self._backoff(attempt))
        item.record["delivery"] = "failed"
        item.call.deliveries_dropped += 1
        self._stats.webhooks_given_up += 1
        log.warning("gave up delivering %s %s to %s after %d attempts",
                    item.data["event_type"], item.data["id"], item.url, attempts)

    async def _post(self, item: Outgoing, attempt: int) -> bool:
        session = self._session
        if session is None:
            raise RuntimeError("the webhook dispatcher is not started")
        body = json.dumps(
            {"data": item.data, "meta": {"attempt": attempt, "delivered_to": item.url}},
            separators=(",", ":"),
        ).encode()
        async with self._semaphore:
            headers = {"Content-Type": "application/json", **self._sign(body)}
            try:
                async with session.post(item.url, data=body, headers=headers) as resp:
                    await resp.read()
                    ok = 200 <= resp.status < 300
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                log.debug("webhook to %s failed: %r", item.url, exc)
                ok = False
        if ok:
            item.call.deliveries_ok += 1
            self._stats.webhooks_sent += 1
        else:
            item.call.deliveries_failed += 1
            self._stats.webhook_delivery_failures += 1
        return ok
