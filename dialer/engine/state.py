"""What every part of the engine may ask about its run: stopping, still claiming, closing."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field


@dataclass
class RunState:
    #: Set when the engine is asked to stop (signal, idle, a crashed task).
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    #: False from the start of shutdown: no new claims; an outage then ends a step at once.
    claiming: bool = True
    #: Set at the end of shutdown: the event processor and the result writer finish the
    #: transaction they are in and return (cancelling them mid-transaction logs errors).
    closing: bool = False
    #: A task crashed (a bug): the process exits non-zero.
    crashed: str | None = None

    def keep_retrying(self) -> bool:
        """Whether a step that met a database outage waits it out (not once shutting down)."""
        return not (self.stopping.is_set() and not self.claiming)
