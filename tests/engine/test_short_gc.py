"""Short collector pauses (`dialer.short_gc`): survivors frozen each period, everything
collected at the full rhythm, garbage cycles still reclaimed."""

from __future__ import annotations

import asyncio
import gc
import time
import weakref

import pytest

from dialer import short_gc

pytestmark = pytest.mark.fast


class Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the collector frees it


async def test_survivors_frozen_and_full_collection_reclaims_frozen_cycles() -> None:
    gc.unfreeze()
    try:
        # The full collection comes long after the checks before it, however busy the host.
        task = asyncio.create_task(short_gc.keep_pauses_short(period=0.02, full_every=1.5))
        started = time.monotonic()
        await asyncio.sleep(0.05)
        node = Node()
        gone = weakref.ref(node)
        await asyncio.sleep(0.06)
        assert gc.get_freeze_count() > 0  # the survivors of the young collections
        del node  # a frozen cycle: no young collection frees it ...
        await asyncio.sleep(0.06)
        if time.monotonic() - started < 1.4:  # (a host that stalled this long proves nothing)
            assert gone() is not None
        deadline = time.monotonic() + 10
        while gone() is not None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert gone() is None  # ... the full one does
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
