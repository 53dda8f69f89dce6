"""Call Control actions (hangup, playback, speak, transfer, gather) sent for live calls.

Actions are decided inside a transaction (the event processor, the flow timers, stop --hangup)
and sent after it commits, each with its own `command_id` (so one repeated after a crash is
ignored by Telnyx). `ActionRunner` sends them as tasks and can wait for them at shutdown.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from campaigns.templates import is_ssml
from dialer.engine.attempts import PendingAction
from dialer.engine.flow import Action
from dialer.engine.identity import action_command_id
from dialer.telnyx.client import TelnyxClient
from dialer.telnyx.errors import CallEnded, CallNotFound, InvalidRequest, TelnyxError

log = logging.getLogger("dialer.engine")

#: Seconds from a person's verdict (the event's `occurred_at`: the AMD result, or the answer
#: without AMD) to the first command for them being sent, most recent last (bounded). The
#: benchmark reads it; the engine's metrics may export it.
FIRST_WORDS_SECS: deque[float] = deque(maxlen=100_000)


def _ssml(act: Action) -> bool:
    """Rendered templates are SSML; so is a text written as SSML (`<speak>...`)."""
    return act.ssml or is_ssml(act.text or "")


async def send_action(client: TelnyxClient, pa: PendingAction,
                      first_words: Callable[[float], None] | None = None) -> None:
    """Send `pa` with its own command_id and client_state. A call that ended first is normal
    (422 90018); a command refused for its content hangs the call up; other failures are
    logged: the flow's timers, the hangup and reconciliation finish the call."""
    act, cc, s = pa.action, pa.call_control_id, pa.settings
    voice, language = s.get("voice", "female"), s.get("language", "en-US")
    if act.verdict_at is not None:
        secs = (datetime.now(UTC) - act.verdict_at).total_seconds()
        FIRST_WORDS_SECS.append(secs)
        if first_words is not None:
            first_words(secs)
    try:
        if act.kind == "hangup":
            await client.hangup(cc, client_state=act.client_state, command_id=pa.command_id)
        elif act.kind == "playback":
            await client.playback_start(cc, audio_url=act.audio_url, media_name=act.media_name,
                                        client_state=act.client_state, command_id=pa.command_id)
        elif act.kind == "speak":
            await client.speak(cc, payload=act.text or "", voice=voice, language=language,
                               payload_type="ssml" if _ssml(act) else None,
                               client_state=act.client_state, command_id=pa.command_id)
        elif act.kind == "transfer":
            await client.transfer(cc, to=act.to or "", client_state=act.client_state,
                                  command_id=pa.command_id)
        elif act.kind == "gather" and act.text is not None:
            await client.gather_using_speak(
                cc, payload=act.text, voice=voice, language=language,
                payload_type="ssml" if _ssml(act) else "text", valid_digits=act.valid_digits,
                minimum_digits=act.min_digits, maximum_digits=act.max_digits, maximum_tries=1,
                timeout_millis=act.timeout_ms, terminating_digit=act.terminating_digit,
                client_state=act.client_state, command_id=pa.command_id)
        elif act.kind == "gather":
            await client.gather_using_audio(
                cc, audio_url=act.audio_url, media_name=act.media_name,
                valid_digits=act.valid_digits, minimum_digits=act.min_digits,
                maximum_digits=act.max_digits, maximum_tries=1, timeout_millis=act.timeout_ms,
                terminating_digit=act.terminating_digit, client_state=act.client_state,
                command_id=pa.command_id)
    except (CallEnded, CallNotFound):
        pass  # the call ended first: normal
    except InvalidRequest as exc:
        # Refused for its content (a voice Telnyx does not have, a payload too long once
        # rendered): it will not succeed later, and the person would hear silence until they
        # hang up. Hang up instead, and say why.
        log.error("action %s on call %s was refused (%s): hanging the call up", act.kind, cc, exc)
        if act.kind != "hangup":
            await send_action(client, replace(
                pa, command_id=action_command_id(pa.command_id, "hangup-refused"),
                action=Action("hangup", client_state=act.client_state)))
    except TelnyxError as exc:
        log.warning("action %s on call %s failed: %s", act.kind, cc, exc)


class ActionRunner:
    """Sends decided actions as background tasks."""

    def __init__(self, client: TelnyxClient,
                 first_words: Callable[[float], None] | None = None) -> None:
        self._client = client
        #: Told each first-words delay (seconds): the engine's metrics histogram.
        self._first_words = first_words
        self._tasks: set[asyncio.Task[None]] = set()
        #: How one action is sent (replaceable, e.g. to simulate a crash before sending).
        self.send: Callable[[PendingAction], Coroutine[Any, Any, None]] = self._send

    async def _send(self, pa: PendingAction) -> None:
        await send_action(self._client, pa, self._first_words)

    def run(self, actions: Iterable[PendingAction]) -> None:
        for pa in actions:
            task = asyncio.create_task(self.send(pa))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def wait(self, timeout: float) -> None:
        """Let the actions in flight finish (at shutdown)."""
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=timeout)
