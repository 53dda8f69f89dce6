"""TelnyxClient against a real HTTP server on 127.0.0.1 (aiohttp test server, no mocks)."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import BaseTestServer, TestServer

from dialer.telnyx.client import TelnyxClient, encode_dial
from dialer.telnyx.dial import CallStatus, DialRequest
from dialer.telnyx.errors import (
    AuthenticationError,
    CallEnded,
    CallNotFound,
    InvalidRequest,
    NetworkError,
    NotSent,
    OutcomeUnknown,
    RateLimited,
    ServerError,
    SlotMissed,
    TelnyxError,
)
from tests.openapi import BODY_SCHEMAS, schema_errors
from tests.rawhttp import RawApi
from tests.telnyx.test_dial_fields import FULL

API_KEY = "KEY0123456789SECRET_abcdef"
FROM = "+18005550101"
CONN = "7267xxxxxxxxxxxxxx"
CCID = "v3:MdI91X4lWFEs7IgbBEOT9M4AigoY08M0WWZFISt1Yw2axZ_IiE4pqg"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

@dataclass
class Seen:
    method: str
    raw_path: str
    headers: dict[str, str]
    body: bytes
    peer: Any

    @property
    def json(self) -> Any:
        return json.loads(self.body)


def dial_ok(request: web.Request, body: dict[str, Any]) -> web.Response:
    return web.json_response({"data": {
        "call_control_id": CCID, "call_leg_id": "2dc6fc34-f9e0-11ea-b68e-02420a0f7768",
        "call_session_id": "2dc1b3c8-f9e0-11ea-bc5a-02420a0f7768",
        "client_state": body.get("client_state"), "is_alive": False, "record_type": "call"}})


def error(status: int, code: str, detail: str = "", pointer: str | None = None,
          headers: dict[str, str] | None = None) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        err: dict[str, Any] = {"code": code, "title": "Error", "detail": detail or f"code {code}"}
        if pointer:
            err["source"] = {"pointer": pointer}
        return web.json_response({"errors": [err]}, status=status, headers=headers)
    return handler


def sleep(seconds: float) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        await asyncio.sleep(seconds)
        return web.json_response({"data": {"result": "ok"}})
    return handler


@dataclass
class FakeTelnyx:
    """Records every request; answers from `script` (one handler per request) or the default."""

    server: BaseTestServer | None = None
    seen: list[Seen] = field(default_factory=list)
    script: list[Handler] = field(default_factory=list)
    schema_problems: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("/v2"))

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        peer = request.transport.get_extra_info("peername") if request.transport else None
        self.seen.append(Seen(request.method, request.raw_path, dict(request.headers), body, peer))
        if request.method == "POST":
            name = request.path if request.path == "/v2/calls" else request.path.rsplit("/", 1)[-1]
            if name in BODY_SCHEMAS:
                self.schema_problems += schema_errors(BODY_SCHEMAS[name], json.loads(body))
        if self.script:
            return await self.script.pop(0)(request)
        if request.method == "POST" and request.path == "/v2/calls":
            return dial_ok(request, json.loads(body))
        if request.method == "GET":
            ccid = request.match_info["tail"].removeprefix("calls/")
            return web.json_response({"data": {
                "call_control_id": ccid, "call_leg_id": "leg", "call_session_id": "session",
                "client_state": "aGk=", "is_alive": False, "record_type": "call",
                "start_time": "2019-01-23T18:10:02.574Z", "end_time": "2019-01-23T18:11:52.574Z",
                "call_duration": 110}})
        return web.json_response({"data": {"result": "ok"}})


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelnyx]:
    fake = FakeTelnyx()
    app = web.Application()
    app.router.add_route("*", "/v2/{tail:.*}", fake.handle)
    async with TestServer(app, host="127.0.0.1") as server:
        fake.server = server
        yield fake
    assert fake.schema_problems == [], "a request body does not match the OpenAPI schema"


@pytest.fixture
async def client(fake: FakeTelnyx) -> AsyncIterator[TelnyxClient]:
    async with TelnyxClient(fake.url, API_KEY, read_timeout=0.5, resend_backoff_secs=0.01) as c:
        yield c


def req(**kw: Any) -> DialRequest:
    return DialRequest(to=kw.pop("to", "+18005550100"), from_=FROM, connection_id=CONN, **kw)


def assert_no_key(exc: BaseException) -> None:
    assert API_KEY not in str(exc) and API_KEY not in repr(exc)
    assert "\n" not in str(exc)


# --- happy paths ---------------------------------------------------------------------------------

async def test_dial_sends_only_the_set_fields(fake: FakeTelnyx, client: TelnyxClient) -> None:
    result = await client.dial(req(timeout_secs=40, client_state="aGk="))
    (seen,) = fake.seen
    assert seen.method == "POST" and seen.raw_path == "/v2/calls"
    assert seen.json == {"to": "+18005550100", "from": FROM, "connection_id": CONN,
                         "timeout_secs": 40, "client_state": "aGk="}
    assert seen.headers["Authorization"] == f"Bearer {API_KEY}"
    assert seen.headers["Content-Type"] == "application/json"
    assert result.call_control_id == CCID and result.sends == 1
    assert result.call_leg_id and result.call_session_id and result.client_state == "aGk="
    assert result.raw["record_type"] == "call"


async def test_every_field_is_sent_and_matches_the_openapi(
    fake: FakeTelnyx, client: TelnyxClient
) -> None:
    full = DialRequest.from_body(FULL)
    await client.dial(full)
    assert fake.seen[0].json == FULL
    await client.dial(DialRequest.from_body(
        {**{k: v for k, v in FULL.items() if k != "audio_url"}, "media_name": "greeting"}))
    await client.dial(req(to=["+18005550100", "sip:alice@example.com"]))
    # the fixture checks every body against components.schemas.CallRequest


async def test_invalid_request_is_not_sent(fake: FakeTelnyx, client: TelnyxClient) -> None:
    with pytest.raises(InvalidRequest) as info:
        await client.dial(req(to="555-0100", timeout_secs=1))
    assert info.value.status is None
    assert info.value.codes == ["10016", "10033"]
    assert [e.pointer for e in info.value.errors] == ["/to", "/timeout_secs"]
    assert fake.seen == []


async def test_api_url_with_trailing_slash(fake: FakeTelnyx) -> None:
    async with TelnyxClient(fake.url + "/", API_KEY) as c:
        await c.dial(req())
    assert fake.seen[0].raw_path == "/v2/calls"


async def test_retrieve_call_quotes_the_id_but_keeps_the_colon(
    fake: FakeTelnyx, client: TelnyxClient
) -> None:
    status = await client.retrieve_call("v3:ab/c+d=")
    assert fake.seen[0].raw_path == "/v2/calls/v3:ab%2Fc%2Bd%3D"
    assert isinstance(status, CallStatus)
    assert status.call_control_id == "v3:ab/c+d=" and status.is_alive is False
    assert status.call_duration == 110 and status.client_state == "aGk="
    assert status.start_time is not None and status.start_time.tzinfo is not None
    assert status.end_time is not None and (status.end_time - status.start_time).seconds == 110


async def test_actions(fake: FakeTelnyx, client: TelnyxClient) -> None:
    await client.hangup(CCID)
    await client.hangup(CCID, client_state="aGk=", command_id="c1")
    await client.playback_start(CCID, audio_url="https://example.com/a.mp3", loop=2)
    await client.playback_start(CCID, media_name="greeting", loop="infinity")
    await client.speak(CCID, payload="Hello")
    await client.transfer(CCID, to="+18005550199", from_=FROM, timeout_secs=20)
    base = f"/v2/calls/{CCID}/actions/"
    assert [(s.raw_path, s.json) for s in fake.seen] == [
        (base + "hangup", {}),
        (base + "hangup", {"client_state": "aGk=", "command_id": "c1"}),
        (base + "playback_start", {"audio_url": "https://example.com/a.mp3", "loop": 2}),
        (base + "playback_start", {"media_name": "greeting", "loop": "infinity"}),
        (base + "speak", {"payload": "Hello", "voice": "female", "language": "en-US"}),
        (base + "transfer", {"to": "+18005550199", "from": FROM, "timeout_secs": 20}),
    ]


async def test_gather_commands(fake: FakeTelnyx, client: TelnyxClient) -> None:
    await client.gather_using_speak(CCID, payload="<speak>Press 1</speak>", payload_type="ssml",
                                    valid_digits="19", minimum_digits=1, maximum_digits=1,
                                    maximum_tries=1, timeout_millis=5000, client_state="aGk=",
                                    command_id="g1")
    await client.gather_using_audio(CCID, audio_url="https://example.com/menu.mp3",
                                    valid_digits="12", timeout_millis=4000, command_id="g2")
    base = f"/v2/calls/{CCID}/actions/"
    assert [(s.raw_path, s.json) for s in fake.seen] == [
        (base + "gather_using_speak", {
            "payload": "<speak>Press 1</speak>", "voice": "female", "language": "en-US",
            "payload_type": "ssml", "valid_digits": "19", "minimum_digits": 1,
            "maximum_digits": 1, "maximum_tries": 1, "timeout_millis": 5000,
            "client_state": "aGk=", "command_id": "g1"}),
        (base + "gather_using_audio", {
            "audio_url": "https://example.com/menu.mp3", "valid_digits": "12",
            "timeout_millis": 4000, "command_id": "g2"}),
    ]
    with pytest.raises(InvalidRequest):
        await client.gather_using_audio(CCID)
    with pytest.raises(InvalidRequest):
        await client.gather_using_speak(CCID, payload="x" * 3001)
    with pytest.raises(InvalidRequest):
        await client.gather_using_speak(CCID, payload="x", minimum_digits=3, maximum_digits=2)
    assert len(fake.seen) == 2


async def test_action_arguments_checked_locally(fake: FakeTelnyx, client: TelnyxClient) -> None:
    with pytest.raises(InvalidRequest):
        await client.playback_start(CCID)
    with pytest.raises(InvalidRequest):
        await client.playback_start(CCID, audio_url="https://x/a.mp3", media_name="m")
    with pytest.raises(InvalidRequest):
        await client.hangup(CCID, client_state="not base64!")
    with pytest.raises(InvalidRequest):
        await client.hangup("")
    assert fake.seen == []


async def test_one_shared_session_reuses_connections(
    fake: FakeTelnyx, client: TelnyxClient
) -> None:
    for _ in range(5):
        await client.dial(req())
    assert len({s.peer for s in fake.seen}) == 1


async def test_many_concurrent_dials(fake: FakeTelnyx) -> None:
    # A patient client: the fixture's 0.5 s read timeout is about re-sends, not throughput.
    async with TelnyxClient(fake.url, API_KEY, read_timeout=30) as client:
        results = await asyncio.gather(*(client.dial(req(command_id=f"c{i}"))
                                         for i in range(300)))
    assert len(results) == 300 and all(r.sends == 1 for r in results)


# --- error mapping -------------------------------------------------------------------------

async def test_401(fake: FakeTelnyx, client: TelnyxClient) -> None:
    fake.script.append(error(401, "10009", "Authentication failed"))
    with pytest.raises(AuthenticationError) as info:
        await client.dial(req(command_id="c"))
    assert info.value.status == 401 and info.value.errors[0].code == "10009"
    assert "Authentication failed" in str(info.value)
    assert_no_key(info.value)
    assert len(fake.seen) == 1


async def test_422_is_final_even_with_command_id(fake: FakeTelnyx, client: TelnyxClient) -> None:
    fake.script.append(error(422, "10016", "Phone number must be in +E164 format", "/to"))
    with pytest.raises(InvalidRequest) as info:
        await client.dial(req(command_id="c"))
    assert info.value.codes == ["10016"] and info.value.errors[0].pointer == "/to"
    assert "/to" in str(info.value) and "+E164" in str(info.value)
    assert_no_key(info.value)
    assert len(fake.seen) == 1


async def test_422_call_ended_and_not_found(fake: FakeTelnyx, client: TelnyxClient) -> None:
    fake.script += [error(422, "90018", "Call has already ended"),
                    error(422, "90015", "Invalid call_control_id"),
                    error(404, "10005", "Resource not found")]
    with pytest.raises(CallEnded) as ended:
        await client.hangup(CCID)
    assert isinstance(ended.value, InvalidRequest) and ended.value.codes == ["90018"]
    with pytest.raises(CallNotFound):
        await client.speak(CCID, payload="hi")
    with pytest.raises(CallNotFound):
        await client.retrieve_call(CCID)


@pytest.mark.parametrize(("code", "headers", "reset"), [
    ("90103", {"x-ratelimit-limit": "150", "x-ratelimit-remaining": "0",
               "x-ratelimit-reset": "3"}, 3.0),
    ("10011", {"Retry-After": "1.5"}, 1.5),
    ("10011", {}, None),
])
async def test_429(
    fake: FakeTelnyx, client: TelnyxClient, code: str, headers: dict[str, str],
    reset: float | None,
) -> None:
    fake.script.append(error(429, code, "Too many requests", headers=headers))
    with pytest.raises(RateLimited) as info:
        await client.dial(req(command_id="c"))
    assert info.value.code == code and info.value.reset_secs == reset
    assert info.value.status == 429
    assert_no_key(info.value)
    assert len(fake.seen) == 1  # a 429 is never re-sent: the call was not placed


async def test_500_without_command_id_is_not_resent(
    fake: FakeTelnyx, client: TelnyxClient
) -> None:
    fake.script.append(error(500, "10007", "Unexpected error"))
    with pytest.raises(ServerError) as info:
        await client.dial(req())
    assert info.value.status == 500
    assert_no_key(info.value)
    assert len(fake.seen) == 1


async def test_non_json_error_body(fake: FakeTelnyx, client: TelnyxClient) -> None:
    async def html(request: web.Request) -> web.Response:
        return web.Response(status=502, text="<html><body>\n<h1>Bad gateway</h1></body></html>")
    fake.script.append(html)
    with pytest.raises(ServerError) as info:
        await client.retrieve_call(CCID)
    assert "Bad gateway" in str(info.value) and info.value.errors == []
    assert_no_key(info.value)


async def test_2xx_without_json(fake: FakeTelnyx, client: TelnyxClient) -> None:
    async def text(request: web.Request) -> web.Response:
        return web.Response(text="ok")
    fake.script.append(text)
    with pytest.raises(TelnyxError):
        await client.hangup(CCID)


async def test_timeout_is_an_unknown_outcome(fake: FakeTelnyx, client: TelnyxClient) -> None:
    fake.script.append(sleep(2))
    with pytest.raises(OutcomeUnknown) as info:
        await client.hangup(CCID)
    assert "timed out" in str(info.value)
    assert_no_key(info.value)


async def test_connection_refused_is_never_sent() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with TelnyxClient(f"http://127.0.0.1:{port}/v2", API_KEY, resend_backoff_secs=0.001) as c:
        with pytest.raises(NotSent) as info:
            await c.dial(req(command_id="c"))
    assert isinstance(info.value, NetworkError)
    assert_no_key(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__


async def test_refused_after_a_timeout_is_an_unknown_outcome(fake: FakeTelnyx) -> None:
    """A dial whose first send timed out may have placed a call, even if the re-sends could not
    connect at all."""
    fake.script.append(sleep(2))
    async with TelnyxClient(fake.url, API_KEY, read_timeout=0.3, resend_backoff_secs=0.001,
                            max_dial_sends=2) as c:
        real_send = c._send
        calls = {"n": 0}

        async def send(method: str, path: str, data: bytes | None) -> Any:
            calls["n"] += 1
            if calls["n"] == 1:
                return await real_send(method, path, data)
            raise NotSent("Telnyx POST /calls not sent: refused", status=None)
        c._send = send  # type: ignore[method-assign]
        with pytest.raises(OutcomeUnknown):
            await c.dial(req(command_id="c"))


# --- a dial written by its deadline or not at all ---------------------------------------------

async def test_dial_written_by_its_deadline_is_sent_as_usual(
    fake: FakeTelnyx, client: TelnyxClient
) -> None:
    loop = asyncio.get_running_loop()
    body = encode_dial(req(command_id="on-time"))
    result = await client.dial_encoded(body, "on-time", write_by=loop.time() + 5)
    assert result.call_control_id == CCID and result.sends == 1
    assert [s.body for s in fake.seen] == [body]
    assert fake.seen[0].headers["Content-Type"] == "application/json"


async def test_dial_past_its_deadline_at_the_write_sends_no_byte() -> None:
    """The deadline is checked when the bytes are due on the socket, not when the dial
    starts: a dial that waited for the only pooled connection past it is never written (the
    server sees the first request only), and the connection still serves the next dial."""
    loop = asyncio.get_running_loop()
    # The first request holds the client's only connection for 0.3 s.
    async with RawApi(delay=lambda n: 0.3 if n == 1 else 0.0) as raw, \
            TelnyxClient(raw.url, API_KEY, max_connections=1) as c:
        first = asyncio.create_task(c.dial_encoded(b'{"n":1}', "one",
                                                   write_by=loop.time() + 5))
        await asyncio.sleep(0.05)
        with pytest.raises(SlotMissed) as info:
            await c.dial_encoded(b'{"n":2}', "two", write_by=loop.time() + 0.1)
        assert isinstance(info.value, NotSent)
        assert (await first).sends == 1
        await asyncio.sleep(0.1)
        assert raw.bodies == [b'{"n":1}'] and raw.partial == []
        third = await c.dial_encoded(b'{"n":3}', "three", write_by=loop.time() + 5)
        assert third.sends == 1 and raw.bodies == [b'{"n":1}', b'{"n":3}']


async def test_connections_opened_ahead_carry_the_dials_and_hold_them_to_their_deadline(
) -> None:
    """Opened ahead, the connections send nothing until dials come; the dials then use them
    (no new connection) and, their handshake done, are held to their deadline."""
    loop = asyncio.get_running_loop()
    async with RawApi(delay=lambda n: 0.05) as raw, TelnyxClient(raw.url, API_KEY) as c:
        assert await c.open_connections(3) == 3
        await asyncio.sleep(0.05)
        assert len(raw.accepted) == 3 and raw.bodies == []
        bodies = [b'{"n":%d}' % n for n in range(3)]
        results = await asyncio.gather(*(
            c.dial_encoded(b, f"c{n}", write_by=loop.time() + 5)
            for n, b in enumerate(bodies)))  # overlapping: each on its own connection
        assert [r.sends for r in results] == [1, 1, 1]
        assert sorted(raw.bodies) == bodies and len(raw.accepted) == 3
        assert c.new_connection_dials == 0
        with pytest.raises(SlotMissed):
            await c.dial_encoded(b'{"n":9}', "late", write_by=loop.time() - 0.001)
        assert len(raw.accepted) == 3 and len(raw.bodies) == 3 and raw.partial == []


async def test_opening_connections_ahead_to_nowhere_raises_nothing() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with TelnyxClient(f"http://127.0.0.1:{port}/v2", API_KEY) as c:
        assert await c.open_connections(4) == 0


async def test_a_missed_deadline_is_never_resent(fake: FakeTelnyx, client: TelnyxClient) -> None:
    loop = asyncio.get_running_loop()
    first = encode_dial(req(command_id="warm"))
    await client.dial_encoded(first, "warm", write_by=loop.time() + 5)  # opens the connection
    with pytest.raises(SlotMissed):
        await client.dial_encoded(encode_dial(req(command_id="late")), "late",
                                  write_by=loop.time() - 0.001)
    await asyncio.sleep(0.05)
    assert [s.body for s in fake.seen] == [first]


async def test_the_first_dial_on_a_new_connection_is_written_even_when_late(
    fake: FakeTelnyx, client: TelnyxClient
) -> None:
    """Refusing it would close the connection it just opened (aiohttp closes a connection whose
    request failed): against a server whose handshake takes longer than the tolerance, no dial
    would ever go out."""
    loop = asyncio.get_running_loop()
    body = encode_dial(req(command_id="cold"))
    result = await client.dial_encoded(body, "cold", write_by=loop.time() - 1)
    assert result.sends == 1 and [s.body for s in fake.seen] == [body]
    assert client.new_connection_dials == 1  # the wire opens more connections ahead then


# --- re-sends ----------------------------------------------------------------------------------

async def test_dial_resent_with_same_bytes_on_5xx_with_command_id(
    fake: FakeTelnyx, client: TelnyxClient
) -> None:
    fake.script += [error(500, "10007"), error(503, "10007")]
    result = await client.dial(req(command_id="attempt-1", client_state="aGk="))
    assert result.sends == 3 and result.call_control_id == CCID
    assert len(fake.seen) == 3
    assert len({s.body for s in fake.seen}) == 1
    assert fake.seen[0].json["command_id"] == "attempt-1"


async def test_dial_resent_after_timeout_with_command_id(
    fake: FakeTelnyx, client: TelnyxClient
) -> None:
    fake.script.append(sleep(2))
    result = await client.dial(req(command_id="attempt-2"))
    assert result.sends == 2 and fake.seen[0].body == fake.seen[1].body


async def test_dial_not_resent_after_timeout_without_command_id(
    fake: FakeTelnyx, client: TelnyxClient
) -> None:
    fake.script.append(sleep(2))
    with pytest.raises(NetworkError):
        await client.dial(req())
    assert len(fake.seen) == 1


async def test_resends_are_bounded_by_count(fake: FakeTelnyx) -> None:
    fake.script += [error(500, "10007")] * 10
    async with TelnyxClient(fake.url, API_KEY, max_dial_sends=3,
                            resend_backoff_secs=0.001) as c:
        with pytest.raises(ServerError):
            await c.dial(req(command_id="c"))
    assert len(fake.seen) == 3


async def test_resends_are_bounded_by_time(fake: FakeTelnyx) -> None:
    fake.script += [error(500, "10007")] * 10
    async with TelnyxClient(fake.url, API_KEY, max_dial_sends=10, resend_window_secs=0.3,
                            resend_backoff_secs=0.1) as c:
        with pytest.raises(ServerError):
            await c.dial(req(command_id="c"))
    # sends at ~0 and ~0.1 s; the next would start at ~0.3 s, outside the window
    assert len(fake.seen) == 2


async def test_default_bounds_fit_the_dedupe_window() -> None:
    c = TelnyxClient("http://127.0.0.1:9/v2", API_KEY)
    assert c.max_dial_sends == 4 and c.resend_window_secs < 60


async def test_4xx_after_a_5xx_stops_the_resends(fake: FakeTelnyx, client: TelnyxClient) -> None:
    fake.script += [error(500, "10007"), error(422, "10015", "Invalid value for connection_id")]
    with pytest.raises(InvalidRequest):
        await client.dial(req(command_id="c"))
    assert len(fake.seen) == 2


# --- the key stays secret ------------------------------------------------------------------

async def test_api_key_never_in_repr_or_logs(
    fake: FakeTelnyx, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake.script += [error(500, "10007"), error(401, "10009", "Authentication failed")]
    async with TelnyxClient(fake.url, API_KEY, resend_backoff_secs=0.001) as c:
        assert API_KEY not in repr(c) and API_KEY not in str(c)
        with pytest.raises(AuthenticationError) as info:
            await c.dial(req(command_id="c", sip_auth_password="pw-secret"))
    assert_no_key(info.value)
    assert API_KEY not in caplog.text
    assert "pw-secret" not in repr(req(sip_auth_password="pw-secret"))


#: The fast tier (pytest -m fast): no database, no processes.
pytestmark = pytest.mark.fast
