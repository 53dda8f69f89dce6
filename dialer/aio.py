"""The event loop the long-running processes use.

`dialer run`, the simulator and the demo run on uvloop where it is installed (Linux and macOS):
measured on the webhook and pacing benchmarks, its transports and scheduling cost a fraction of
the standard loop's, which is most of a busy receiver's time. Elsewhere the standard loop runs.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - Windows, or uvloop not installed
        return None
    return uvloop.new_event_loop


def loop_in_thread(name: str) -> tuple[asyncio.AbstractEventLoop, threading.Thread]:
    """A standard event loop (its `time()` is `time.monotonic()`) running on a daemon thread of
    its own, started and running on return. Stop it with `loop.call_soon_threadsafe(loop.stop)`
    and join the thread: the loop closes itself."""
    ready = threading.Event()
    loop = asyncio.new_event_loop()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(ready.set)
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    ready.wait()
    return loop, thread


def run(coro: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run`, on the fastest event loop available."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(coro)
