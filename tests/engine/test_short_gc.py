"""Short collector pauses (`dialer.short_gc`): survivors frozen each period, everything
collected at the full rhythm, garbage cycles still reclaimed; the dial wire held around a full
collection."""

from __future__ import annotations

import asyncio
import gc
import time
import weakref

import pytest

from dialer import short_gc
from dialer.engine.claims import DialJob
from dialer.engine.wire import ArmedDial, DialWire, WireReport

pytestmark = pytest.mark.fast


class Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the collector frees it


async def test_survivors_frozen_and_full_collection_reclaims_frozen_cycles() -> None:
    gc.unfreeze()
    try:
        task = asyncio.create_task(short_gc.keep_pauses_short(period=0.02, full_every=0.3))
        await asyncio.sleep(0.05)
        node = Node()
        gone = weakref.ref(node)
        await asyncio.sleep(0.06)
        assert gc.get_freeze_count() > 0  # the survivors of the young collections
        del node  # a frozen cycle: no young collection frees it ...
        await asyncio.sleep(0.06)
        assert gone() is not None
        await asyncio.sleep(0.4)  # ... the full one does
        assert gone() is None
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        gc.unfreeze()


async def test_young_cycles_are_collected_between_freezes() -> None:
    gc.unfreeze()
    try:
        task = asyncio.create_task(short_gc.keep_pauses_short(period=0.02, full_every=60))
        await asyncio.sleep(0.03)
        gone = weakref.ref(Node())  # garbage at once: the next young collection frees it
        await asyncio.sleep(0.06)
        assert gone() is None
        task.cancel()
    finally:
        gc.unfreeze()


async def test_before_full_is_awaited_before_each_full_collection() -> None:
    held: list[float] = []

    async def hold() -> None:
        held.append(time.monotonic())

    gc.unfreeze()
    try:
        task = asyncio.create_task(short_gc.keep_pauses_short(
            period=0.02, full_every=0.1, before_full=hold))
        await asyncio.sleep(0.35)
        task.cancel()
        assert 1 <= len(held) <= 4
    finally:
        gc.unfreeze()


class _Client:
    def __init__(self) -> None:
        self.sent: list[str] = []

    async def dial(self, request: object, *, resend_window_secs: float | None = None) -> str:
        self.sent.append(str(request))
        return "ok"

    async def close(self) -> None:
        pass


async def test_a_held_wire_gives_its_slots_up_and_sends_after() -> None:
    """Around a full collection the dial wire starts nothing: a dial checked just before the
    pause would be written after it, next to the dials after it."""
    reports: list[WireReport] = []
    got = asyncio.Event()

    def report(r: WireReport) -> None:
        reports.append(r)
        got.set()

    async def guard() -> None:
        return None

    client = _Client()
    wire = DialWire(client, allowed=lambda cid: True, report=report,  # type: ignore[arg-type]
                    guard=guard, started=lambda: None)
    wire.start()
    try:
        def armed(n: int) -> ArmedDial:
            job = DialJob(n, 1, n, 1, "+14155550100", f"cmd-{n}", "state")
            return ArmedDial(job, lambda: f"dial-{n}", time.monotonic() + 0.01)  # type: ignore[arg-type,return-value]

        wire.hold(0.2)
        wire.arm([armed(1)])
        await asyncio.wait_for(got.wait(), 2)
        assert [r.kind for r in reports] == ["missed"] and client.sent == []
        await asyncio.sleep(0.25)
        got.clear()
        wire.arm([armed(2)])
        await asyncio.wait_for(got.wait(), 2)
        assert [r.kind for r in reports] == ["missed", "sent"] and client.sent == ["dial-2"]
    finally:
        await wire.close()
