"""Garbage collection without long pauses, for the processes that keep time: the engine (its
main loop answers webhooks and drives call flows) and the simulator (it stamps each dial on
arrival). The dial wire is a process of its own and freezes its start-up once.

A full CPython collection walks every tracked object with every thread stopped. Measured at
100 dials/s with two engines (docs/benchmarks.md): 12-18 ms pauses in an engine, 50-60 ms in
the simulator, a few times a minute. A dial due in a pause starts late and gives its slot up; a
simulator stamps the dials that arrived in a pause all at once, a burst at the arrival side that
the engines never sent (and the ledger shows a window over the limit).

`keep_pauses_short` collects the young generations every `period` and freezes what survived
(`gc.freeze`, O(1)): later collections, the automatic full ones included, only walk what was
allocated since. Frozen objects are still freed when nothing refers to them; only cycles among
them wait, for one full collection every `full_every` (unfreeze, collect, freeze): one pause at a
known rhythm instead of many at random moments.
"""

from __future__ import annotations

import asyncio
import gc
import time

#: How often the young generations are collected and their survivors frozen.
PERIOD_SECS = 1.0
#: How often everything is collected (cycles among long-lived objects, reclaimed).
FULL_EVERY_SECS = 600.0


def settle() -> None:
    """Collect everything now and freeze it: at the end of a start-up, before anything that
    keeps time runs (the engine calls it before its tasks start)."""
    gc.collect()
    gc.freeze()


async def keep_pauses_short(period: float = PERIOD_SECS,
                            full_every: float = FULL_EVERY_SECS) -> None:
    """Run for the life of the process (cancel to stop); call `settle()` first, where the
    start-up ends."""
    last_full = time.monotonic()
    while True:
        await asyncio.sleep(period)
        if time.monotonic() - last_full >= full_every:
            gc.unfreeze()
            settle()
            last_full = time.monotonic()
        else:
            gc.collect(1)
            gc.freeze()
