"""Sending one call-flow action to Telnyx (after the transaction that decided it committed)."""

from __future__ import annotations

import logging
from collections import deque
from datetime import UTC, datetime

from dialer.engine.attempts import PendingAction
from dialer.telnyx.client import TelnyxClient
from dialer.telnyx.errors import CallEnded, CallNotFound, TelnyxError

log = logging.getLogger("dialer.engine")

#: Seconds from a person's verdict (the event's `occurred_at`: the AMD result, or the answer
#: without AMD) to the first command for them being sent, most recent last (bounded). The
#: benchmark reads it; the engine's metrics may export it.
FIRST_WORDS_SECS: deque[float] = deque(maxlen=100_000)


async def send_action(client: TelnyxClient, pa: PendingAction) -> None:
    """Send `pa` with its own command_id. A call that ended first is normal (422 90018); other
    failures are logged: the flow's timers, the hangup and reconciliation finish the call."""
    act, cc, s = pa.action, pa.call_control_id, pa.settings
    voice, language = s.get("voice", "female"), s.get("language", "en-US")
    if act.verdict_at is not None:
        FIRST_WORDS_SECS.append((datetime.now(UTC) - act.verdict_at).total_seconds())
    try:
        if act.kind == "hangup":
            await client.hangup(cc, command_id=pa.command_id)
        elif act.kind == "playback":
            await client.playback_start(cc, audio_url=act.audio_url, media_name=act.media_name,
                                        command_id=pa.command_id)
        elif act.kind == "speak":
            await client.speak(cc, payload=act.text or "", voice=voice, language=language,
                               command_id=pa.command_id)
        elif act.kind == "transfer":
            await client.transfer(cc, to=act.to or "", command_id=pa.command_id)
        elif act.kind == "gather" and act.text is not None:
            await client.gather_using_speak(
                cc, payload=act.text, voice=voice, language=language,
                payload_type="ssml" if act.ssml else "text", valid_digits=act.valid_digits,
                minimum_digits=act.min_digits, maximum_digits=act.max_digits, maximum_tries=1,
                timeout_millis=act.timeout_ms, client_state=act.client_state,
                command_id=pa.command_id)
        elif act.kind == "gather":
            await client.gather_using_audio(
                cc, audio_url=act.audio_url, media_name=act.media_name,
                valid_digits=act.valid_digits, minimum_digits=act.min_digits,
                maximum_digits=act.max_digits, maximum_tries=1, timeout_millis=act.timeout_ms,
                client_state=act.client_state, command_id=pa.command_id)
    except (CallEnded, CallNotFound):
        pass  # the call ended first: normal
    except TelnyxError as exc:
        log.warning("action %s on call %s failed: %s", act.kind, cc, exc)
