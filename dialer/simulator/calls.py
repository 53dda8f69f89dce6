"""One simulated call: its timeline (timers on the event loop, no task per call) and the effect of
call-control commands on it."""

from __future__ import annotations

import asyncio
import functools
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from dialer.simulator.gather import GatherPlan, GatherSpec, gather_rng, plan_gather
from dialer.simulator.ids import iso
from dialer.simulator.ledger import LedgerCall
from dialer.simulator.scenarios import PLAYBACK_SECS, AmdEvent, CallPlan, Hangup, speak_secs
from dialer.simulator.webhooks import Outbox

State = Literal["ringing", "answered", "ended"]


class CallHost(Protocol):
    """What a call needs from the simulator that runs it."""

    @property
    def speed(self) -> float: ...

    @property
    def keypad(self) -> tuple[Mapping[str, float], Mapping[str, float], float]:
        """(behaviour weights, key weights, single-key press rate) at keypad prompts."""

    def now(self) -> float:
        """POSIX seconds of the simulator's clock (wall time, or a dry run's simulated time)."""

    def emit(self, call: SimCall, event_type: str, extra: dict[str, Any], *, final: bool) -> None:
        """Record one webhook event of `call` and queue it for delivery."""

    def call_ended(self, call: SimCall) -> None:
        """`call` has just hung up."""


@dataclass
class Media:
    """The playback or speech currently playing on a call."""

    kind: Literal["playback", "speak"]
    fields: dict[str, Any]
    handle: asyncio.TimerHandle | None


@dataclass
class Gathering:
    """The keypad prompt in progress: its plan and the keys pressed so far."""

    plan: GatherPlan
    terminating_digit: str
    pressed: list[str]
    handles: list[asyncio.TimerHandle]


class SimCall:
    def __init__(
        self,
        host: CallHost,
        ledger: LedgerCall,
        plan: CallPlan,
        dial: Mapping[str, Any],
        rng: random.Random,
        *,
        gather_key: tuple[int, str, int] = (0, "", 0),
    ) -> None:
        """`rng` is the call's generator (`scenarios.call_rng`); `gather_key` the (seed, number,
        nth call to it) that the person's keypad answers are drawn from (`gather.gather_rng`)."""
        self.host = host
        self.ledger = ledger
        self.plan = plan
        # Draw now what later steps need, so the generator (a few KB) is not kept per call.
        self._fail_after = rng.uniform(0.1, 0.5)
        self._transfer_talk = rng.uniform(10.0, 60.0)
        self.client_state: str | None = ledger.client_state
        self.state: State = "ringing"
        self.outbox = Outbox()
        self.occupies_channel = True
        self.expires_at: float | None = None  # loop time after which GET forgets the call
        self._dial_media = {k: dial[k] for k in ("audio_url", "media_name") if k in dial}
        self._timers: list[asyncio.TimerHandle] = []
        self._hangup_timer: asyncio.TimerHandle | None = None
        self._media: Media | None = None
        self._command_ids: set[str] = set()
        self._gather_key = gather_key
        self._gathers = 0  # keypad prompts started on this call
        self._gather: Gathering | None = None

    # --- identity -------------------------------------------------------------------------

    @property
    def call_control_id(self) -> str:
        return self.ledger.call_control_id

    @property
    def is_alive(self) -> bool:
        return self.state != "ended"

    def payload_base(self) -> dict[str, Any]:
        led = self.ledger
        return {
            "call_control_id": led.call_control_id,
            "call_leg_id": led.call_leg_id,
            "call_session_id": led.call_session_id,
            "connection_id": led.connection_id,
            "client_state": self.client_state,
            "from": led.from_,
            "to": led.to,
        }

    def status(self) -> dict[str, Any]:
        """The `data` of `GET /v2/calls/{id}`."""
        led = self.ledger
        data: dict[str, Any] = {
            "call_control_id": led.call_control_id,
            "call_leg_id": led.call_leg_id,
            "call_session_id": led.call_session_id,
            "is_alive": self.is_alive,
            "record_type": "call",
            "start_time": iso(led.dialed_at),
        }
        if self.client_state is not None:
            data["client_state"] = self.client_state
        # call_duration: seconds talked (answer to end, or to now while alive), as billed.
        end = led.ended_at if led.ended_at is not None else self.host.now()
        data["call_duration"] = int(end - led.answered_at) if led.answered_at is not None else 0
        if led.ended_at is not None:
            data["end_time"] = iso(led.ended_at)
        return data

    # --- timeline -------------------------------------------------------------------------

    def _later(self, sim_secs: float, fn: Callable[[], None]) -> asyncio.TimerHandle:
        handle = asyncio.get_running_loop().call_later(max(0.0, sim_secs) / self.host.speed, fn)
        self._timers.append(handle)
        return handle

    def start(self) -> None:
        """Send `call.initiated` now and schedule the rest of the plan."""
        self._emit("call.initiated", {
            "direction": "outgoing", "state": "bridging", "start_time": iso(self.ledger.dialed_at),
        })
        if self.plan.answer_at is not None:
            self._later(self.plan.answer_at, self._answer)
            for event in self.plan.amd_events:
                self._later(event.at, functools.partial(self._amd, event))
        self._hangup_timer = self._later(self.plan.hangup.at,
                                         lambda: self._far_end(self.plan.hangup))

    def fail_channel_limit(self) -> None:
        """Over the account's channels: the call is accepted, then fails at SIP level (403)."""
        self.occupies_channel = False
        self.ledger.channel_limited = True
        self._emit("call.initiated", {
            "direction": "outgoing", "state": "bridging", "start_time": iso(self.ledger.dialed_at),
        })
        self._later(self._fail_after,
                    lambda: self.end("unspecified", "unknown", "403"))

    def _answer(self) -> None:
        if self.state != "ringing":
            return
        self.state = "answered"
        self.ledger.answered_at = self.host.now()
        self._emit("call.answered", {"start_time": iso(self.ledger.dialed_at), "state": "answered"})
        if self._dial_media:
            self._start_media("playback", self._playback_fields(self._dial_media), PLAYBACK_SECS)

    def _amd(self, event: AmdEvent) -> None:
        if self.state != "answered":
            return
        if "greeting" in event.event_type:
            self.ledger.greeting_result = event.result
        else:
            self.ledger.amd_result = event.result
        self._emit(event.event_type, {"result": event.result})

    def _far_end(self, hangup: Hangup) -> None:
        self.end(hangup.cause, hangup.source, hangup.sip)

    def end(self, cause: str, source: str, sip: str) -> None:
        """Hang up (idempotent): media ends with `call_hangup`, then `call.hangup` goes out."""
        if self.state == "ended":
            return
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()
        self._stop_media("call_hangup")
        self._end_gather("call_hangup")
        self.state = "ended"
        led = self.ledger
        led.ended_at = self.host.now()
        led.hangup_cause, led.hangup_source, led.sip_hangup_cause = cause, source, sip
        self._emit("call.hangup", {
            "state": "hangup",
            "hangup_cause": cause,
            "hangup_source": source,
            "sip_hangup_cause": sip,
            "start_time": iso(led.dialed_at),
            "end_time": iso(led.ended_at),
            "call_quality_stats": None,
        }, final=True)
        self.host.call_ended(self)

    def cancel_timers(self) -> None:
        """Forget the call's future (simulator shutdown): no more events."""
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()

    def _emit(self, event_type: str, extra: dict[str, Any], *, final: bool = False) -> None:
        self.host.emit(self, event_type, extra, final=final)

    # --- media ----------------------------------------------------------------------------

    @staticmethod
    def _playback_fields(body: Mapping[str, Any]) -> dict[str, Any]:
        fields: dict[str, Any] = {"overlay": bool(body.get("overlay", False))}
        if "audio_url" in body:
            fields["media_url"] = body["audio_url"]
        if "media_name" in body:
            fields["media_name"] = body["media_name"]
        return fields

    def _start_media(self, kind: Literal["playback", "speak"], fields: dict[str, Any],
                     secs: float | None) -> None:
        self._stop_media("cancelled")  # a new prompt replaces the one playing
        self._emit(f"call.{kind}.started", fields)
        media = Media(kind, fields, None)
        self._media = media
        if secs is not None:  # None: loops forever until stopped
            media.handle = self._later(secs, lambda: self._media_done(media))

    def _media_done(self, media: Media) -> None:
        if self._media is not media:
            return
        self._media = None
        if media.kind == "playback":
            self.ledger.playback_completed = True
        else:
            self.ledger.speak_completed = True
        self._emit(f"call.{media.kind}.ended", {**media.fields, "status": "completed"})

    def _stop_media(self, status: str, kind: str | None = None) -> None:
        media = self._media
        if media is None or (kind is not None and media.kind != kind):
            return
        self._media = None
        if media.handle is not None:
            media.handle.cancel()
        self._emit(f"call.{media.kind}.ended", {**media.fields, "status": status})

    # --- commands (validated by the server; `state` checks are the server's too) -----------

    def seen_command(self, command_id: Any) -> bool:
        """True when this command_id was already used on this call (Telnyx ignores the repeat)."""
        return isinstance(command_id, str) and command_id in self._command_ids

    def command(self, action: str, body: Mapping[str, Any]) -> bool:
        """Carry out a validated command unless its command_id was already used on this call
        (False: ignored). The command_id is remembered only once the command was carried out."""
        command_id = body.get("command_id")
        if self.seen_command(command_id):
            return False
        self.apply(action, body)
        if isinstance(command_id, str):
            self._command_ids.add(command_id)
        return True

    def apply(self, action: str, body: Mapping[str, Any]) -> None:
        """Carry out a validated command. The command's client_state (if any) applies to the
        webhooks it causes and to every later one. What can fail is worked out before anything
        about the call changes."""
        gather = self._plan_gather(action, body) if action.startswith("gather_") else None
        if body.get("client_state") is not None:
            self.client_state = body["client_state"]
        record: dict[str, Any] = {"action": action, "at": self.host.now()}
        for key in ("audio_url", "media_name", "payload", "voice", "to", "valid_digits"):
            if key in body:
                record[key] = body[key]
        record["request"] = dict(body)  # the whole validated body, to check it from outside
        self.ledger.actions.append(record)
        if action == "hangup":
            if self.state == "ringing":
                self.end("originator_cancel", "caller", "487")
            else:
                self.end("normal_clearing", "caller", "200")
        elif action == "playback_start":
            loops = body.get("loop", 1)
            secs = None if loops == "infinity" else PLAYBACK_SECS * max(1, int(loops))
            self._start_media("playback", self._playback_fields(body), secs)
        elif action == "playback_stop":
            self._stop_media("cancelled", "playback")
        elif action == "speak":
            self._start_media("speak", {}, speak_secs(str(body["payload"])))
        elif gather is not None:
            self._start_gather(*gather)
        elif action == "transfer":
            self._stop_media("cancelled")
            self._end_gather("cancelled")
            if self._hangup_timer is not None:
                self._hangup_timer.cancel()
            # The transferred call talks for a while, then ends normally.
            self._hangup_timer = self._later(
                self._transfer_talk, lambda: self.end("normal_clearing", "callee", "200")
            )
        # client_state_update: nothing beyond the client_state above.

    # --- keypad ---------------------------------------------------------------------------

    def _plan_gather(self, action: str, body: Mapping[str, Any]) -> tuple[GatherSpec, GatherPlan]:
        """The person's answer to this prompt (pure: nothing about the call changes). It is
        drawn from the seed, the number, the call's rank among the calls to it and the prompt's
        rank on the call, so a rerun with the same seed replays it."""
        if action == "gather_using_speak":
            prompt = speak_secs(str(body["payload"]))
            invalid = speak_secs(str(body["invalid_payload"])) if "invalid_payload" in body else 0
        else:
            prompt = PLAYBACK_SECS
            invalid = PLAYBACK_SECS if ("invalid_audio_url" in body
                                        or "invalid_media_name" in body) else 0
        spec = GatherSpec.from_body(body, prompt, invalid)
        behaviour, keys, single = self.host.keypad
        if self.plan.scenario != "human":  # a machine, a fax or silence presses nothing
            behaviour = {"timeout": 1.0}
        rng = gather_rng(*self._gather_key, self._gathers)
        return spec, plan_gather(spec, rng, behaviour, keys, single)

    def _start_gather(self, spec: GatherSpec, plan: GatherPlan) -> None:
        """Prompt and collect keys: `call.dtmf.received` per key, then `call.gather.ended`."""
        self._stop_media("cancelled")
        self._end_gather("cancelled")
        self._gathers += 1
        g = Gathering(plan, spec.terminating_digit, [], [])
        self._gather = g
        for at, key in plan.presses:
            g.handles.append(self._later(at, functools.partial(self._press, g, key)))
        if plan.hangup:
            g.handles.append(self._later(plan.end_at, lambda: self.end(
                "normal_clearing", "callee", "200")))
        else:
            g.handles.append(self._later(plan.end_at, lambda: self._gather_done(g)))

    def _press(self, g: Gathering, key: str) -> None:
        if self._gather is not g:
            return
        g.pressed.append(key)
        self._emit("call.dtmf.received", {"digit": key})

    def _gather_done(self, g: Gathering) -> None:
        if self._gather is g:
            self._end_gather(g.plan.status, g.plan.digits)

    def _end_gather(self, status: str, digits: str | None = None) -> None:
        g = self._gather
        if g is None:
            return
        self._gather = None
        for handle in g.handles:
            handle.cancel()
        if digits is None:
            # Cut short: the keys of the entry in progress (a terminating digit ended the ones
            # before it, and is never part of the digits).
            term = g.terminating_digit
            entry = g.pressed
            if term and term in entry:
                entry = entry[len(entry) - entry[::-1].index(term):]
            digits = "".join(entry)
        self.ledger.gathers.append({"status": status, "digits": digits, "at": self.host.now(),
                                    "pressed": "".join(g.pressed),
                                    "behaviour": g.plan.behaviour,
                                    "client_state": self.client_state})
        self._emit("call.gather.ended", {"digits": digits, "status": status})
