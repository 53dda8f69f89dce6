"""The event loop the long-running processes use.

`dialer run`, the simulator and the demo run on uvloop where it is installed (Linux and macOS):
measured on the webhook and pacing benchmarks, its transports and scheduling cost a fraction of
the standard loop's, which is most of a busy receiver's time. Elsewhere the standard loop runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - Windows, or uvloop not installed
        return None
    return uvloop.new_event_loop


def run(coro: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run`, on the fastest event loop available."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(coro)
