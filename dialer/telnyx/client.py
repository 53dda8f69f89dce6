"""Async client of the Telnyx Call Control API (`POST /calls`, `GET /calls/{id}`, call actions).

One shared aiohttp session per client. The client never re-sends a dial on its own unless the
request carries a `command_id` (Telnyx ignores repeats of it for 60 s); then it re-sends the exact
same bytes, only after a 5xx, a timeout or a network error, and only within a bounded number of
sends and seconds. A 4xx is final: in particular a 429 means the call was not placed, and pacing
(not this client) decides when to try again.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import time
import weakref
from collections.abc import Mapping
from typing import Any, Self
from urllib.parse import quote

import aiohttp
from aiohttp.abc import AbstractStreamWriter
from aiohttp.payload import BytesPayload
from yarl import URL

from dialer.telnyx.dial import CallStatus, DialRequest, DialResult
from dialer.telnyx.errors import (
    ApiError,
    InvalidRequest,
    NetworkError,
    NotSent,
    OutcomeUnknown,
    ServerError,
    SlotMissed,
    TelnyxError,
    error_from_response,
)

__all__ = ["TelnyxClient"]

log = logging.getLogger(__name__)

_USER_AGENT = "campaign-dialer/0.1 (+aiohttp)"


def encode_dial(req: DialRequest) -> bytes:
    """The body `TelnyxClient.dial` sends for `req` (validated first: raises as `dial` would)."""
    req.validate()
    return _dumps(req.to_body())


def _dumps(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _call_path(call_control_id: str) -> str:
    """Quote the id for a path segment, keeping ':' (ids look like `v3:...`)."""
    if not call_control_id:
        raise InvalidRequest("call_control_id must not be empty", status=None,
                             errors=[ApiError("90015", "Invalid call_control_id", "is empty")])
    return "/calls/" + quote(call_control_id, safe=":")


def _check_client_state(client_state: str | None) -> None:
    if client_state is None:
        return
    try:
        base64.b64decode(client_state.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise InvalidRequest(
            "client_state must be a valid Base-64 encoded string", status=None,
            errors=[ApiError("10002", "Invalid parameter", "must be valid Base-64",
                             "/client_state")],
        ) from None


class _TooLate(Exception):
    """Raised inside aiohttp by `_WrittenBy`: the body was not written."""


class _Connections:
    """The connections (their transports) that carried a dial or were opened ahead, and how many
    dials went out on a connection opened for them (`new_connection_dials`: the pool was too
    small for the dials in flight)."""

    def __init__(self) -> None:
        self.known: weakref.WeakSet[asyncio.BaseTransport] = weakref.WeakSet()
        self.new_connection_dials = 0


class _WrittenBy(BytesPayload):
    """A request body written only while the event loop's clock is at most `deadline`, on a
    connection that has carried a request before or was opened ahead (`open_connections`).

    The check runs in the same step as the socket write (aiohttp hands the body and the
    buffered headers to the transport right after it, with no await between), so a process
    that loses its core between the dial wire's check at the slot and the write cannot send
    late: the bytes go out within the tolerance or not at all (`SlotMissed`). The first request
    on a new connection is written whatever the time: aiohttp closes a connection whose request
    failed, so refusing it would throw away the connection it just made, and against a server
    whose handshake takes longer than the tolerance (TLS to Telnyx) no dial could ever be
    written. Connections are kept alive, so this is the start and the pool's growth only."""

    def __init__(self, value: bytes, deadline: float, connections: _Connections) -> None:
        super().__init__(value, content_type="application/json")
        self.deadline = deadline
        self.too_late = False
        self._connections = connections

    def _check(self, writer: AbstractStreamWriter) -> None:
        transport = getattr(writer, "transport", None)
        if transport is None:
            return
        if transport not in self._connections.known:
            self._connections.known.add(transport)
            self._connections.new_connection_dials += 1
            return
        if asyncio.get_running_loop().time() > self.deadline:
            self.too_late = True
            raise _TooLate

    async def write(self, writer: AbstractStreamWriter) -> None:
        self._check(writer)
        await super().write(writer)

    async def write_with_length(self, writer: AbstractStreamWriter,
                                content_length: int | None) -> None:
        self._check(writer)
        await super().write_with_length(writer, content_length)


def _set(**fields: Any) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


#: A dial whose send may have reached Telnyx without an answer (5xx, timeout, connection lost
#: after the write) is sent again with its command_id at most this many sends in all, the first
#: re-send after `RESEND_BACKOFF_SECS`, doubling (the engine applies the same bounds to the
#: re-sends it gives slots of their own: `dialer.engine.dispatcher`).
MAX_DIAL_SENDS = 4
RESEND_BACKOFF_SECS = 0.5


class TelnyxClient:
    """Call Control client; use `async with TelnyxClient(...)` or call `close()` when done."""

    def __init__(
        self,
        api_url: str,
        api_key: str,
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 10.0,
        max_dial_sends: int = MAX_DIAL_SENDS,
        resend_window_secs: float = 45.0,
        resend_backoff_secs: float = RESEND_BACKOFF_SECS,
        max_connections: int = 512,
    ) -> None:
        if max_dial_sends < 1:
            raise ValueError("max_dial_sends must be at least 1")
        self.api_url = api_url.rstrip("/")
        self.max_dial_sends = max_dial_sends
        self.resend_window_secs = resend_window_secs
        self.resend_backoff_secs = resend_backoff_secs
        self._headers = {
            "Authorization": f"Bearer {api_key}",
            "Accept": "application/json",
            "Content-Type": "application/json",
            "User-Agent": _USER_AGENT,
        }
        # Per-socket limits, no total: a request waiting for a free pooled connection is not a
        # timeout, and a slow but progressing answer is not cut mid-way.
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=None, sock_connect=connect_timeout, sock_read=read_timeout
        )
        self._max_connections = max_connections
        #: aiohttp hooks for every session (a benchmark records when requests are written).
        self.trace_configs: list[aiohttp.TraceConfig] = []
        #: One session per event loop: the engine dials from its own thread's loop (see
        #: `dialer.engine.wire`) and sends call actions from the main loop with this client.
        self._sessions: dict[asyncio.AbstractEventLoop, aiohttp.ClientSession] = {}
        #: Connections that carried a dial or were opened ahead (`_WrittenBy`,
        #: `open_connections`).
        self._connections = _Connections()

    def __repr__(self) -> str:
        return f"TelnyxClient(api_url={self.api_url!r})"

    async def __aenter__(self) -> Self:
        self._get_session()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the session of the running event loop (each loop closes its own)."""
        session = self._sessions.pop(asyncio.get_running_loop(), None)
        if session is not None:
            await session.close()

    def _get_session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        session = self._sessions.get(loop)
        if session is None or session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections, limit_per_host=0, ttl_dns_cache=300,
                keepalive_timeout=30,
            )
            session = self._sessions[loop] = aiohttp.ClientSession(
                connector=connector, headers=self._headers, timeout=self._timeout,
                raise_for_status=False, trace_configs=self.trace_configs or None,
            )
        return session

    @property
    def new_connection_dials(self) -> int:
        """Dials (with `write_by`) that went out on a connection opened for them so far."""
        return self._connections.new_connection_dials

    async def open_connections(self, count: int) -> int:
        """Have `count` connections to the API idle in the pool beside those in use, so that
        dials at their slots find one whose handshake is done (`_WrittenBy` then holds them to
        their deadline). Best effort: returns how many were had, raises nothing.

        aiohttp has no call for this: its connector's `connect` is given a request that is
        never sent, `count` times at once, and each connection is released back to the pool.
        The connector hands out idle connections first: those come back at once, one loop turn
        later, so dials due meanwhile do not wait for the new ones' handshakes."""
        connector = self._get_session().connector
        if connector is None or count < 1:
            return 0
        try:
            request = aiohttp.ClientRequest("POST", URL(self.api_url + "/calls", encoded=True),
                                            loop=asyncio.get_running_loop())
        except Exception as exc:  # an aiohttp whose request cannot be built like this
            log.debug("connections not opened ahead: %s", exc)
            return 0
        pending = [asyncio.ensure_future(connector.connect(request, [], self._timeout))
                   for _ in range(count)]
        await asyncio.sleep(0)  # each took an idle connection (done) or began a new one
        opened = 0
        for future in pending:
            if future.done():
                opened += self._release(future)
        try:
            await asyncio.wait(pending)
        except asyncio.CancelledError:  # the wire is closing: no connection left held
            for future in pending:
                if future.done():
                    self._release(future)
                else:
                    future.cancel()
            raise
        for future in pending:
            opened += self._release(future)
        if opened < count:
            log.debug("%d of %d connections opened ahead", opened, count)
        return opened

    def _release(self, future: asyncio.Future[Any]) -> int:
        """Back to the pool, once: 1 if `future` holds a connection not released yet."""
        if future.cancelled() or future.exception() is not None:
            return 0
        conn = future.result()
        if conn.protocol is None:  # released already
            return 0
        if conn.closed:  # the server closed it meanwhile
            conn.close()
            return 0
        if conn.transport is not None:
            self._connections.known.add(conn.transport)
        conn.release()
        return 1

    # --- transport -----------------------------------------------------------------------------

    async def _send(
        self, method: str, path: str, data: bytes | _WrittenBy | None
    ) -> tuple[int, Mapping[str, str], bytes]:
        """One HTTP exchange; a connection that could not be made becomes `NotSent`, a timeout or
        a connection lost once the request may have been written `OutcomeUnknown`, a body
        past its deadline (`_WrittenBy`) `SlotMissed`."""
        what = f"{method} {path}"
        url = URL(self.api_url + path, encoded=True)
        started = time.monotonic()
        try:
            async with self._get_session().request(method, url, data=data) as resp:
                body = await resp.read()
                status, headers = resp.status, resp.headers
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            # `from None`: aiohttp exceptions may carry request_info, whose headers hold the key.
            detail = str(exc) or type(exc).__name__
            raise NotSent(f"Telnyx {what} not sent: {detail}", status=None) from None
        except TimeoutError:
            raise OutcomeUnknown(f"Telnyx {what} timed out", status=None) from None
        except aiohttp.ClientError as exc:
            if isinstance(data, _WrittenBy) and data.too_late:
                raise SlotMissed(f"Telnyx {what} not sent: past its deadline when due to be "
                                 "written", status=None) from None
            detail = str(exc) or type(exc).__name__
            raise OutcomeUnknown(f"Telnyx {what} failed: {detail}", status=None) from None
        log.debug("%s -> %d in %.0f ms", what, status, (time.monotonic() - started) * 1000)
        return status, headers, body

    async def _request(
        self, method: str, path: str, body: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        data = _dumps(body) if body is not None else None
        status, headers, raw = await self._send(method, path, data)
        return self._parse(method, path, status, headers, raw)

    @staticmethod
    def _parse(
        method: str, path: str, status: int, headers: Mapping[str, str], raw: bytes
    ) -> dict[str, Any]:
        """The `data` object of a 2xx answer, or the mapped exception."""
        what = f"{method} {path}"
        if not 200 <= status < 300:
            raise error_from_response(status, headers, raw, what=what)
        try:
            parsed = json.loads(raw)
        except ValueError:
            raise TelnyxError(
                f"Telnyx {what} answered HTTP {status} with a body that is not JSON",
                status=status,
            ) from None
        data = parsed.get("data") if isinstance(parsed, dict) else None
        if not isinstance(data, dict):
            raise TelnyxError(f"Telnyx {what} answered HTTP {status} without a data object",
                              status=status)
        return data

    # --- calls -----------------------------------------------------------------------------------

    async def dial(self, req: DialRequest, *, resend_window_secs: float | None = None
                   ) -> DialResult:
        """Place a call. Re-sends (same bytes) only when `req.command_id` is set; see module doc.
        `resend_window_secs` shortens the re-send window for this dial (a dial re-sent after a
        crash: Telnyx's 60 s command_id memory started with the first send, long ago)."""
        return await self.dial_encoded(encode_dial(req), req.command_id,
                                       resend_window_secs=resend_window_secs)

    async def dial_encoded(self, data: bytes, command_id: str | None, *,
                           resend_window_secs: float | None = None,
                           write_by: float | None = None,
                           max_sends: int | None = None) -> DialResult:
        """`dial` of a request already validated and encoded (`encode_dial`): the dial wire
        gets its requests ready-made from the engine. `write_by` (the event loop's clock): the
        first send's bytes are written by then or not at all (`SlotMissed`, nothing sent),
        unless it is the first request on a new connection (see `_WrittenBy`). `max_sends`:
        this call's bound instead of the client's (the dial wire sends once: the engine
        re-sends in a slot of its own)."""
        resendable = command_id is not None
        window = self.resend_window_secs
        if resend_window_secs is not None:
            window = min(window, resend_window_secs)
        first_sent = time.monotonic()
        bound = max_sends or self.max_dial_sends
        sends = 0
        #: Whether any send so far may have reached Telnyx (a call may exist).
        maybe_delivered = False
        while True:
            sends += 1
            try:
                body: bytes | _WrittenBy = data
                if write_by is not None and sends == 1:
                    body = _WrittenBy(data, write_by, self._connections)
                status, headers, raw = await self._send("POST", "/calls", body)
                result = self._parse("POST", "/calls", status, headers, raw)
            except SlotMissed:
                raise  # nothing sent: the caller takes a new slot, no re-send here
            except (ServerError, NetworkError) as exc:
                delay = self.resend_backoff_secs * 2 ** (sends - 1)
                elapsed = time.monotonic() - first_sent
                if (not resendable or sends >= bound
                        or elapsed + delay >= window):
                    if isinstance(exc, NotSent) and maybe_delivered:
                        raise OutcomeUnknown(f"{exc} (an earlier send may have reached "
                                             "Telnyx)", status=None) from None
                    raise
                maybe_delivered = maybe_delivered or not isinstance(exc, NotSent)
                log.warning("dial %s: %s; re-sending (send %d of at most %d)",
                            command_id, exc, sends + 1, bound)
                await asyncio.sleep(delay)
                continue
            if "call_control_id" not in result:
                raise TelnyxError("Telnyx POST /calls answered without a call_control_id",
                                  status=status)
            return DialResult.from_data(result, sends=sends)

    async def retrieve_call(self, call_control_id: str) -> CallStatus:
        """The live status of a call (Telnyx keeps it 10 minutes after the call ends)."""
        data = await self._request("GET", _call_path(call_control_id))
        data.setdefault("call_control_id", call_control_id)
        return CallStatus.from_data(data)

    async def _action(self, call_control_id: str, action: str, body: dict[str, Any]) -> None:
        _check_client_state(body.get("client_state"))
        await self._request("POST", f"{_call_path(call_control_id)}/actions/{action}", body)

    async def hangup(
        self, call_control_id: str, *, client_state: str | None = None,
        command_id: str | None = None,
    ) -> None:
        await self._action(call_control_id, "hangup",
                           _set(client_state=client_state, command_id=command_id))

    async def playback_start(
        self,
        call_control_id: str,
        *,
        audio_url: str | None = None,
        media_name: str | None = None,
        loop: int | str | None = None,
        client_state: str | None = None,
        command_id: str | None = None,
    ) -> None:
        """Play a file: exactly one of `audio_url`, `media_name`; `loop` 1..100 or "infinity"."""
        if (audio_url is None) == (media_name is None):
            raise InvalidRequest("playback_start needs exactly one of audio_url and media_name",
                                 status=None)
        await self._action(call_control_id, "playback_start", _set(
            audio_url=audio_url, media_name=media_name, loop=loop, client_state=client_state,
            command_id=command_id))

    async def speak(
        self,
        call_control_id: str,
        *,
        payload: str,
        voice: str = "female",
        language: str = "en-US",
        payload_type: str | None = None,
        client_state: str | None = None,
        command_id: str | None = None,
    ) -> None:
        """`payload_type` "ssml" for SSML (Telnyx's default, when it is absent, is "text")."""
        await self._action(call_control_id, "speak", _set(
            payload=payload, voice=voice, language=language, payload_type=payload_type,
            client_state=client_state, command_id=command_id))

    async def transfer(
        self,
        call_control_id: str,
        *,
        to: str,
        from_: str | None = None,
        timeout_secs: int | None = None,
        client_state: str | None = None,
        command_id: str | None = None,
    ) -> None:
        body = _set(to=to, timeout_secs=timeout_secs, client_state=client_state,
                    command_id=command_id)
        if from_ is not None:
            body["from"] = from_
        await self._action(call_control_id, "transfer", body)

    async def gather_using_speak(
        self,
        call_control_id: str,
        *,
        payload: str,
        voice: str = "female",
        language: str = "en-US",
        payload_type: str = "text",
        valid_digits: str | None = None,
        minimum_digits: int | None = None,
        maximum_digits: int | None = None,
        maximum_tries: int | None = None,
        timeout_millis: int | None = None,
        inter_digit_timeout_millis: int | None = None,
        terminating_digit: str | None = None,
        invalid_payload: str | None = None,
        client_state: str | None = None,
        command_id: str | None = None,
    ) -> None:
        """Say `payload` (text or SSML) and collect keypad digits: `call.dtmf.received` per key,
        one `call.gather.ended` (digits, status) at the end."""
        _check_gather(payload, minimum_digits, maximum_digits)
        await self._action(call_control_id, "gather_using_speak", _set(
            payload=payload, voice=voice, language=language, payload_type=payload_type,
            invalid_payload=invalid_payload, valid_digits=valid_digits,
            minimum_digits=minimum_digits, maximum_digits=maximum_digits,
            maximum_tries=maximum_tries, timeout_millis=timeout_millis,
            inter_digit_timeout_millis=inter_digit_timeout_millis,
            terminating_digit=terminating_digit, client_state=client_state,
            command_id=command_id))

    async def gather_using_audio(
        self,
        call_control_id: str,
        *,
        audio_url: str | None = None,
        media_name: str | None = None,
        invalid_audio_url: str | None = None,
        valid_digits: str | None = None,
        minimum_digits: int | None = None,
        maximum_digits: int | None = None,
        maximum_tries: int | None = None,
        timeout_millis: int | None = None,
        inter_digit_timeout_millis: int | None = None,
        terminating_digit: str | None = None,
        client_state: str | None = None,
        command_id: str | None = None,
    ) -> None:
        """Play a file (exactly one of `audio_url`, `media_name`) and collect keypad digits."""
        if (audio_url is None) == (media_name is None):
            raise InvalidRequest("gather_using_audio needs exactly one of audio_url and "
                                 "media_name", status=None)
        _check_gather(None, minimum_digits, maximum_digits)
        await self._action(call_control_id, "gather_using_audio", _set(
            audio_url=audio_url, media_name=media_name, invalid_audio_url=invalid_audio_url,
            valid_digits=valid_digits, minimum_digits=minimum_digits,
            maximum_digits=maximum_digits, maximum_tries=maximum_tries,
            timeout_millis=timeout_millis, inter_digit_timeout_millis=inter_digit_timeout_millis,
            terminating_digit=terminating_digit, client_state=client_state,
            command_id=command_id))


def _check_gather(payload: str | None, minimum: int | None, maximum: int | None) -> None:
    """Telnyx's documented limits, checked before sending (a 422 costs the callee a prompt)."""
    if payload is not None and not 1 <= len(payload) <= 3000:
        raise InvalidRequest("gather payload must be 1-3,000 characters", status=None)
    lo = 1 if minimum is None else minimum
    hi = 128 if maximum is None else maximum
    if not 1 <= lo <= hi <= 128:
        raise InvalidRequest("gather needs 1 <= minimum_digits <= maximum_digits <= 128",
                             status=None)
