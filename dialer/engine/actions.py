"""Call Control actions (hangup, playback, speak, transfer) sent for live calls.

Actions are decided inside a transaction (the event processor, the flow timers, stop --hangup)
and sent after it commits, each with its own `command_id` (so one repeated after a crash is
ignored by Telnyx). `ActionRunner` sends them as tasks and can wait for them at shutdown.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

from dialer.engine.attempts import PendingAction
from dialer.telnyx.client import TelnyxClient
from dialer.telnyx.errors import CallEnded, CallNotFound, TelnyxError

log = logging.getLogger("dialer.engine")


async def send_action(client: TelnyxClient, pa: PendingAction) -> None:
    """Send one action; a call that ended first is normal, other errors are logged."""
    act, cc, s = pa.action, pa.call_control_id, pa.settings
    try:
        if act.kind == "hangup":
            await client.hangup(cc, command_id=pa.command_id)
        elif act.kind == "playback":
            await client.playback_start(cc, audio_url=act.audio_url, media_name=act.media_name,
                                        command_id=pa.command_id)
        elif act.kind == "speak":
            await client.speak(cc, payload=act.text or "", voice=s.get("voice", "female"),
                               language=s.get("language", "en-US"), command_id=pa.command_id)
        elif act.kind == "transfer":
            await client.transfer(cc, to=act.to or "", command_id=pa.command_id)
    except (CallEnded, CallNotFound):
        pass  # the call ended first: normal
    except TelnyxError as exc:
        log.warning("action %s on call %s failed: %s", act.kind, cc, exc)


class ActionRunner:
    """Sends decided actions as background tasks."""

    def __init__(self, client: TelnyxClient) -> None:
        self._client = client
        self._tasks: set[asyncio.Task[None]] = set()
        #: How one action is sent (replaceable, e.g. to simulate a crash before sending).
        self.send: Callable[[PendingAction], Coroutine[Any, Any, None]] = self._send

    async def _send(self, pa: PendingAction) -> None:
        await send_action(self._client, pa)

    def run(self, actions: Iterable[PendingAction]) -> None:
        for pa in actions:
            task = asyncio.create_task(self.send(pa))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def wait(self, timeout: float) -> None:
        """Let the actions in flight finish (at shutdown)."""
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=timeout)
