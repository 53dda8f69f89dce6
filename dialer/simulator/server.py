"""The Telnyx-compatible HTTP server: `Simulator`.

It runs in whatever event loop starts it (the engine embeds it with `dialer run --simulate`; the
`dialer simulator` command runs it alone). Routes:

- `POST /v2/calls` (Dial), `GET /v2/calls/{call_control_id}`,
  `POST /v2/calls/{call_control_id}/actions/{hangup|playback_start|playback_stop|speak|transfer|
  gather_using_speak|gather_using_audio}` (a null field is a field not given),
  `PUT|POST /v2/calls/{call_control_id}/actions/client_state_update`;
- `GET /_simulator/calls` (the ledger), `GET /_simulator/stats`, `GET|POST /_simulator/faults`.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import math
import random
import time
from collections import OrderedDict, defaultdict, deque
from collections.abc import Awaitable, Callable
from dataclasses import replace
from types import TracebackType
from typing import Any, Self

from aiohttp import web

from campaigns.telnyx_schema.dial import validate_dial_request
from dialer.simulator import errors as E
from dialer.simulator.actions import (
    ACTIONS,
    NEEDS_ANSWER,
    normalize_action_body,
    validate_action,
)
from dialer.simulator.calls import SimCall
from dialer.simulator.config import FaultConfig, SimulatorConfig
from dialer.simulator.ids import iso, new_call_control_id, new_uuid
from dialer.simulator.ledger import LedgerCall, Stats
from dialer.simulator.ratelimit import PeakMeter, RollingWindow
from dialer.simulator.scenarios import call_rng, choose_scenario, plan_call
from dialer.simulator.webhooks import Outgoing, WebhookDispatcher
from dialer.telnyx.signatures import generate_keypair, public_key_from_private, sign

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: Telnyx ignores a repeated dial `command_id` for this long (wall clock).
COMMAND_ID_TTL_SECS = 60.0


class _BadBody(Exception):
    def __init__(self, response: web.Response) -> None:
        self.response = response


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


class Simulator:
    """A Telnyx Call Control look-alike on 127.0.0.1. Use `async with Simulator(config) as sim:`
    or `await sim.start()` / `await sim.stop()`."""

    def __init__(self, config: SimulatorConfig | None = None, *,
                 time_source: Callable[[], float] | None = None) -> None:
        """`time_source`: POSIX seconds that webhook and ledger times (`occurred_at`,
        `start_time`, `end_time`, `call_duration`) are taken from. Default: the wall clock. A
        dry run passes its engine's simulated clock, so that both sides of the calls tell the
        same (simulated) time; timers still run at `config.speed` on the event loop, and
        signatures keep the wall clock (the receiver checks their age against it)."""
        self.config = config or SimulatorConfig()
        self._time: Callable[[], float] = time_source or time.time
        self._faults = replace(self.config.faults)
        self._stats = Stats()
        self._rng = random.Random()  # fault rolls: independent of the scenario seed
        self._ledger: list[LedgerCall] = []
        self._by_id: dict[str, LedgerCall] = {}
        self._calls: dict[str, SimCall] = {}  # live calls and recently ended ones (GET-able)
        self._expiry: deque[tuple[float, str]] = deque()
        self._commands: OrderedDict[str, tuple[float, dict[str, Any]]] = OrderedDict()
        self._nth: defaultdict[str, int] = defaultdict(int)
        self._live = 0  # calls holding a channel
        self._alive = 0  # calls not ended (channel-limited ones included)
        self._window = RollingWindow(self.config.dials_per_window, self.config.cps_window_secs)
        self._peak_1s = PeakMeter(1.0)
        self._peak_100ms = PeakMeter(0.1)
        self._private_key: str | None = None
        self._public_key: str | None = None
        self._runner: web.AppRunner | None = None
        self._dispatcher: WebhookDispatcher | None = None
        self._port: int | None = None

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("the simulator is already running")
        if self.config.private_key_b64:
            self._private_key = self.config.private_key_b64
            self._public_key = public_key_from_private(self._private_key)
        else:
            self._private_key, self._public_key = generate_keypair()
        private_key = self._private_key
        self._dispatcher = WebhookDispatcher(
            self.config, lambda body: sign(private_key, body), self._stats, lambda: self._faults
        )
        await self._dispatcher.start()
        runner = web.AppRunner(self._app(), access_log=None, handle_signals=False,
                               shutdown_timeout=1.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.config.host, self.config.port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            await self._dispatcher.stop()
            self._dispatcher = None
            raise
        self._runner = runner
        self._port = int(runner.addresses[0][1])

    async def stop(self) -> None:
        """Stop serving and delivering; calls still in progress are abandoned silently."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        for call in self._calls.values():
            call.cancel_timers()
        if self._dispatcher is not None:
            await self._dispatcher.stop()
            self._dispatcher = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # --- public view ----------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        if self._port is None:
            raise RuntimeError("the simulator is not started")
        host = self.config.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self._port}"

    @property
    def api_url(self) -> str:
        """The base URL for Telnyx clients, e.g. `http://127.0.0.1:PORT/v2`."""
        return self.base_url + "/v2"

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the simulator is not started")
        return self._port

    @property
    def public_key_b64(self) -> str:
        """The base64 Ed25519 key that verifies this simulator's webhooks (TELNYX_PUBLIC_KEY)."""
        if self._public_key is None:
            if self.config.private_key_b64:
                return public_key_from_private(self.config.private_key_b64)
            raise RuntimeError("the simulator is not started (its key pair is made at start)")
        return self._public_key

    @property
    def ledger(self) -> list[LedgerCall]:
        """Every call placed, in dial order (live objects: they update as calls progress)."""
        return self._ledger

    @property
    def faults(self) -> FaultConfig:
        return self._faults

    def set_faults(self, faults: FaultConfig) -> None:
        """Change fault injection at run time (applies to dials and webhooks from now on)."""
        self._faults = replace(faults)

    def find_call(self, call_control_id: str) -> LedgerCall | None:
        return self._by_id.get(call_control_id)

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = self._stats.as_dict()
        out.update(
            live_calls=self._live_calls(),
            max_dials_in_any_1s=self._peak_1s.peak,
            max_dials_in_any_100ms=self._peak_100ms.peak,
            webhooks_in_flight_calls=self._dispatcher.pending_tasks if self._dispatcher else 0,
        )
        return out

    async def wait_idle(self, timeout: float = 30.0, poll: float = 0.02) -> bool:
        """Wait until no call is alive and no webhook is waiting for delivery; False on timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            pending = self._dispatcher.pending_tasks if self._dispatcher else 0
            if self._live_calls() == 0 and pending == 0:
                return True
            await asyncio.sleep(poll)
        return False

    def _live_calls(self) -> int:
        return self._alive

    # --- CallHost -------------------------------------------------------------------------

    @property
    def speed(self) -> float:
        return self.config.speed

    @property
    def keypad(self) -> tuple[dict[str, float], dict[str, float], float]:
        return self.config.keypad, self.config.key_weights, self.config.single_key_press

    def now(self) -> float:
        return self._time()

    def emit(self, call: SimCall, event_type: str, extra: dict[str, Any], *, final: bool) -> None:
        occurred = iso(self._time())
        event_id = new_uuid()
        data = {
            "record_type": "event",
            "event_type": event_type,
            "id": event_id,
            "occurred_at": occurred,
            "payload": {**call.payload_base(), **extra},
        }
        record: dict[str, Any] = {
            "id": event_id, "event_type": event_type, "occurred_at": occurred,
            "delivery": "pending",
        }
        call.ledger.events.append(record)
        self._stats.webhooks_generated += 1
        url = call.ledger.webhook_url
        if url is None or self._dispatcher is None:
            record["delivery"] = "undeliverable"
            self._stats.webhooks_undeliverable += 1
            return
        self._dispatcher.submit(call.outbox, Outgoing(data, url, call.ledger, record), final=final)

    def call_ended(self, call: SimCall) -> None:
        self._stats.calls_ended += 1
        self._alive -= 1
        if call.occupies_channel:
            self._live -= 1
        loop = asyncio.get_running_loop()
        call.expires_at = loop.time() + self.config.call_retention_secs
        self._expiry.append((call.expires_at, call.call_control_id))

    # --- HTTP plumbing --------------------------------------------------------------------

    def _app(self) -> web.Application:
        app = web.Application(
            client_max_size=self.config.max_body_bytes, middlewares=[self._error_middleware]
        )
        app.router.add_post("/v2/calls", self._dial)
        app.router.add_get("/v2/calls/{call_control_id}", self._get_call)
        app.router.add_post("/v2/calls/{call_control_id}/actions/{action}", self._action)
        app.router.add_put("/v2/calls/{call_control_id}/actions/{action}", self._action)
        app.router.add_get("/_simulator/calls", self._sim_calls)
        app.router.add_get("/_simulator/stats", self._sim_stats)
        app.router.add_get("/_simulator/faults", self._sim_get_faults)
        app.router.add_post("/_simulator/faults", self._sim_set_faults)
        return app

    @web.middleware
    async def _error_middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Every error leaves as a Telnyx error body; an unexpected one is logged and is a 500."""
        try:
            return await handler(request)
        except _BadBody as bad:
            return bad.response
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            code = E.NOT_FOUND if exc.status == 404 else E.BAD_REQUEST
            return E.error_response(exc.status, code, exc.reason,
                                    f"{request.method} {request.path}")
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("simulator: unexpected error on %s %s", request.method, request.path)
            return E.error_response(500, E.UNEXPECTED, "Internal server error",
                                    "Internal server error")

    def _authorized(self, request: web.Request, *, optional: bool = False) -> bool:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        expected = self.config.api_key
        if expected is None:
            return optional or (scheme.lower() == "bearer" and bool(token.strip()))
        return scheme.lower() == "bearer" and hmac.compare_digest(
            token.strip().encode(), expected.encode()
        )

    def _unauthorized(self) -> web.Response:
        self._stats.rejected_401 += 1
        return E.error_response(
            401, E.AUTH_FAILED, "Authentication failed",
            "The API key is missing or wrong: send 'Authorization: Bearer <API key>'.",
        )

    async def _json_object(self, request: web.Request) -> dict[str, Any]:
        """The request body as a JSON object ({} when empty); raise _BadBody otherwise."""
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            self._stats.rejected_400 += 1
            raise _BadBody(E.error_response(
                413, E.BAD_REQUEST, "Request body too large",
                f"The request body is larger than {self.config.max_body_bytes} bytes.",
            )) from None
        if not raw.strip():
            return {}
        try:
            body = json.loads(raw, parse_constant=_reject_constant)
        except json.JSONDecodeError as exc:
            self._stats.rejected_400 += 1
            raise _BadBody(E.error_response(
                400, E.BAD_ENCODING, "Invalid JSON",
                f"Error decoding request body at position {exc.pos}: {exc.msg}",
            )) from None
        except (ValueError, RecursionError) as exc:
            self._stats.rejected_400 += 1
            detail = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
            raise _BadBody(E.error_response(
                400, E.BAD_ENCODING, "Invalid JSON", f"Error decoding request body: {detail}",
            )) from None
        if not isinstance(body, dict):
            self._stats.rejected_400 += 1
            raise _BadBody(E.error_response(
                400, E.BAD_REQUEST, "Bad Request",
                f"The request body must be a JSON object, got {type(body).__name__}.",
            ))
        return body

    def _purge(self, now: float) -> None:
        expiry = self._expiry
        while expiry and expiry[0][0] <= now:
            _, cid = expiry.popleft()
            self._calls.pop(cid, None)
        commands = self._commands
        while commands:
            first = next(iter(commands.values()))
            if first[0] > now:
                break
            commands.popitem(last=False)

    def _roll(self, probability: float) -> bool:
        return probability > 0 and self._rng.random() < probability

    # --- Dial -----------------------------------------------------------------------------

    async def _dial(self, request: web.Request) -> web.StreamResponse:
        stats = self._stats
        if not self._authorized(request):
            return self._unauthorized()
        now = asyncio.get_running_loop().time()
        arrived = self._time()  # the ledger's dial time: on arrival, as Telnyx counts
        stats.dials_received += 1
        self._peak_1s.record(now)
        self._peak_100ms.record(now)
        body = await self._json_object(request)
        problems = validate_dial_request(body)
        if problems:
            stats.rejected_422 += 1
            return E.problems_response(problems)

        self._purge(now)
        command_id = body.get("command_id")
        if command_id is not None:
            seen = self._commands.get(command_id)
            if seen is not None:
                stats.duplicate_command_ids += 1
                return web.json_response(seen[1])

        faults = self._faults
        if self._roll(faults.dial_5xx):
            stats.dial_5xx_injected += 1
            return E.error_response(500, E.UNEXPECTED, "Internal server error",
                                    "Internal server error "
                                    "(injected fault: the call was not placed)")
        if not self._window.try_acquire(now):
            stats.rejected_429 += 1
            reset = self._window.reset_after(now)
            return E.error_response(
                429, E.DIALS_PER_SECOND, "Dials per second limit exceeded",
                f"The account may place {self.config.cps_limit} dials per second, counted over "
                f"{self.config.cps_window_secs:g} s. The call was not placed.",
                headers={
                    "x-ratelimit-limit": str(self._window.limit),
                    "x-ratelimit-remaining": "0",
                    "x-ratelimit-reset": str(max(1, math.ceil(reset))),
                },
            )

        call = self._place(body, arrived)
        answer = {"data": self._dial_data(call, body)}
        if command_id is not None:
            self._commands[command_id] = (now + COMMAND_ID_TTL_SECS, answer)

        if self._roll(faults.dial_5xx_after_place):
            stats.dial_5xx_after_place_injected += 1
            return E.error_response(500, E.UNEXPECTED, "Internal server error",
                                    "Internal server error")
        if self._roll(faults.dial_slow):
            stats.dial_slow_injected += 1
            await asyncio.sleep(faults.dial_slow_secs)
        stats.dials_accepted += 1
        return web.json_response(answer)

    def _place(self, body: dict[str, Any], arrived: float) -> SimCall:
        cfg = self.config
        to_value = body["to"]
        to = (to_value[0] if isinstance(to_value, list) else to_value).split(",", 1)[0]
        nth = self._nth[to]
        self._nth[to] = nth + 1
        rng = call_rng(cfg.seed, to, nth)
        scenario = choose_scenario(rng, to, cfg.mix, cfg.pinned)
        amd_mode = body.get("answering_machine_detection", "disabled")
        plan = plan_call(
            scenario, rng,
            amd_mode=amd_mode,
            amd_config=body.get("answering_machine_detection_config"),
            timeout_secs=body.get("timeout_secs", 30),
            time_limit_secs=body.get("time_limit_secs", 14400),
            retry_on_timeout=body.get("retry_on_timeout", True),
        )
        ledger = LedgerCall(
            call_control_id=new_call_control_id(),
            call_leg_id=new_uuid(),
            call_session_id=new_uuid(),
            command_id=body.get("command_id"),
            to=to,
            from_=body["from"],
            connection_id=body["connection_id"],
            client_state=body.get("client_state"),
            scenario=scenario,
            amd_mode=amd_mode,
            dialed_at=arrived,
            webhook_url=body.get("webhook_url") or cfg.default_webhook_url,
        )
        call = SimCall(self, ledger, plan, body, rng, gather_key=(cfg.seed, to, nth))
        self._ledger.append(ledger)
        self._by_id[ledger.call_control_id] = ledger
        self._calls[ledger.call_control_id] = call
        self._stats.calls_placed += 1
        self._alive += 1
        if self._live >= cfg.channels:
            self._stats.channel_limit_failures += 1
            call.fail_channel_limit()
        else:
            self._live += 1
            call.start()
        return call

    @staticmethod
    def _dial_data(call: SimCall, body: dict[str, Any]) -> dict[str, Any]:
        led = call.ledger
        data: dict[str, Any] = {
            "call_control_id": led.call_control_id,
            "call_leg_id": led.call_leg_id,
            "call_session_id": led.call_session_id,
            "is_alive": False,  # dialing is asynchronous
            "record_type": "call",
            "start_time": iso(led.dialed_at),
        }
        if led.client_state is not None:
            data["client_state"] = led.client_state
        if body.get("record") == "record-from-answer":
            data["recording_id"] = new_uuid()
        return data

    # --- call status and commands ---------------------------------------------------------

    async def _get_call(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request):
            return self._unauthorized()
        self._purge(asyncio.get_running_loop().time())
        cid = request.match_info["call_control_id"]
        call = self._calls.get(cid)
        if call is None:
            return E.error_response(
                404, E.NOT_FOUND, "Resource not found",
                "No such call: the call_control_id is unknown, or the call ended more than "
                f"{self.config.call_retention_secs:g} s ago.",
            )
        return web.json_response({"data": call.status()})

    async def _action(self, request: web.Request) -> web.StreamResponse:
        stats = self._stats
        if not self._authorized(request):
            return self._unauthorized()
        action = request.match_info["action"]
        # POST for every command; PUT too for client_state_update (the OpenAPI's method).
        if action not in ACTIONS or (request.method == "PUT" and action != "client_state_update"):
            return E.error_response(
                404, E.NOT_FOUND, "Resource not found",
                f"{request.method} /actions/{action} is not supported by the simulator "
                f"(supported: {', '.join(ACTIONS)}).",
            )
        stats.actions_received += 1
        body = await self._json_object(request)
        self._purge(asyncio.get_running_loop().time())
        cid = request.match_info["call_control_id"]
        call = self._calls.get(cid)
        if call is None or not call.is_alive:
            stats.actions_rejected += 1
            if call is None and cid not in self._by_id:
                return E.error_response(
                    422, E.INVALID_CALL_CONTROL_ID, "Invalid call_control_id",
                    "The call_control_id is not one of a call placed here.",
                    pointer="/call_control_id",
                )
            return E.error_response(422, E.CALL_ENDED, "Call has already ended",
                                    "This call is no longer active and can't receive commands.")
        body = normalize_action_body(body)  # a null field is a field not given
        problems = validate_action(action, body)
        if problems:
            stats.actions_rejected += 1
            return E.problems_response(problems)
        if action in NEEDS_ANSWER and call.state != "answered":
            stats.actions_rejected += 1
            return E.error_response(422, E.NOT_ANSWERED, "Call not answered yet",
                                    f"{action} needs an answered call.")
        call.command(action, body)  # a repeated command_id: ok, and nothing happens
        return web.json_response({"data": {"result": "ok"}})

    # --- simulator control ----------------------------------------------------------------

    async def _sim_calls(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request, optional=True):
            return self._unauthorized()
        to = request.query.get("to")
        calls = [c.as_dict() for c in self._ledger if to is None or c.to == to]
        return web.json_response({"data": calls})

    async def _sim_stats(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request, optional=True):
            return self._unauthorized()
        return web.json_response({"data": self.stats()})

    async def _sim_get_faults(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request, optional=True):
            return self._unauthorized()
        return web.json_response({"data": self._faults.as_dict()})

    async def _sim_set_faults(self, request: web.Request) -> web.StreamResponse:
        """Change some or all fault settings; keys left out keep their value."""
        if not self._authorized(request, optional=True):
            return self._unauthorized()
        body = await self._json_object(request)
        try:
            faults = FaultConfig.from_mapping({**self._faults.as_dict(), **body})
        except (ValueError, TypeError) as exc:
            return E.error_response(422, E.INVALID, "Invalid fault settings", str(exc))
        self.set_faults(faults)
        return web.json_response({"data": faults.as_dict()})
