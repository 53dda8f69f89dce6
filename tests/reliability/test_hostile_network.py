"""Hostile input from the network (issue 20's items 1-3 and 12), property-based where it fits.

- client_state ids outside their columns' ranges, or written any way but plain ASCII decimal,
  are not ours (decode returns None): binding one would fail the event processor's batch.
- Any `telnyx-timestamp` (400 digits, 4,400 digits, random text): 403, never a 500, on the
  engine's receiver and on a webhook worker's port.
- Signed, valid JSON nested deeply (with `\\u` escapes or not): 400, never a 500.
- Slow or incomplete requests are timed out, connections are capped, malformed requests log one
  line each (see dialer/engine/http_limits.py).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import shlex
import subprocess
import sys
import time
import unicodedata
from collections.abc import Iterator

import aiohttp
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncEngine

from campaigns.db.engine import create_engine, session_factory
from campaigns.db.migrate import head_revision
from campaigns.db.models import Campaign
from campaigns.errors import InvalidSettings
from campaigns.names import display, normalize
from dialer.engine import receiver as receiver_module
from dialer.engine.event_log import EventStore
from dialer.engine.events import MAX_DEPTH, BadEnvelope, parse_envelope
from dialer.engine.http_limits import HttpLimits, start_site
from dialer.engine.identity import (
    MAX_ATTEMPT_NO,
    MAX_CONTACT_ID,
    AttemptRef,
    decode_client_state,
    encode_client_state,
)
from dialer.engine.metrics import Metrics
from dialer.engine.receiver import WEBHOOK_PATH, Receiver
from dialer.engine.webhook_workers import WorkerSettings
from dialer.telnyx.errors import InvalidSignature
from dialer.telnyx.signatures import (
    TIMESTAMP_HEADER,
    WebhookVerifier,
    generate_keypair,
    sign,
)
from tests.conftest import new_pg_database
from tests.reliability.harness import ROOT, ReceiverRig

SEED = 20261203
PRIVATE, PUBLIC = generate_keypair()
QUICK = settings(max_examples=300, deadline=None, database=None,
                 suppress_health_check=[HealthCheck.too_slow])
NETWORK = settings(max_examples=60, deadline=None, database=None,
                   suppress_health_check=[HealthCheck.too_slow,
                                          HealthCheck.function_scoped_fixture])


def _state(contact: str, attempt: str, prefix: str = "dlr1") -> str:
    return base64.b64encode(f"{prefix}:{contact}:{attempt}".encode()).decode("ascii")


# ------------------------------------------------------------------- item 1: client_state ids

_INT_TEXT = (st.integers(min_value=-(2**70), max_value=2**70).map(str)
             | st.sampled_from(["0", "-1", "+5", " 5", "5 ", "5_0", "\u0665", "\uff15", "05",
                                "9" * 40, str(2**63), str(2**31), "", "1e3", "0x10", "5\n"])
             | st.text(max_size=12))


@pytest.mark.fast
@seed(SEED)
@QUICK
@given(contact=_INT_TEXT, attempt=_INT_TEXT)
def test_client_state_ids_are_bounded_to_their_columns(contact: str, attempt: str) -> None:
    try:
        value = _state(contact, attempt)
    except UnicodeEncodeError:  # a surrogate in the random text: not even encodable
        return
    ref = decode_client_state(value)
    if ref is None:
        return
    # Accepted only as we write them: plain decimal, in range, and it round-trips.
    assert 1 <= ref.contact_id <= MAX_CONTACT_ID and 1 <= ref.attempt_no <= MAX_ATTEMPT_NO
    assert (str(ref.contact_id), str(ref.attempt_no)) == (contact, attempt)
    assert encode_client_state(ref) == value


@pytest.mark.fast
@pytest.mark.parametrize(("contact", "attempt"), [
    ("99999999999999999999999", "1"), ("1", "2147483648"), (str(2**63), "1"), ("0", "1"),
    ("1", "0"), ("-1", "1"), ("+1", "1"), ("\u0661", "1"), ("1_0", "1"), (" 1", "1"),
    ("01", "1"), ("1", "\uff11")])
def test_client_state_out_of_range_or_oddly_written_is_not_ours(contact: str,
                                                                  attempt: str) -> None:
    assert decode_client_state(_state(contact, attempt)) is None


@pytest.mark.fast
@pytest.mark.parametrize("value", [5, 5.5, ["a"], {"a": 1}, True, None, b"ZGxyMTox"])
def test_client_state_that_is_not_a_string_is_not_ours(value: object) -> None:
    assert decode_client_state(value) is None


@pytest.mark.fast
@seed(SEED)
@QUICK
@given(contact=st.integers(1, MAX_CONTACT_ID), attempt=st.integers(1, MAX_ATTEMPT_NO))
def test_client_states_we_write_still_decode(contact: int, attempt: int) -> None:
    ref = AttemptRef(contact, attempt)
    assert decode_client_state(encode_client_state(ref)) == ref


# -------------------------------------------------------------- item 2: random timestamps

_TIMESTAMPS = (st.integers(min_value=0, max_value=10**500).map(str)
               | st.sampled_from(["9" * 400, "9" * 4400, "1" * 4301, "0" * 400, "00001",
                                  "-1", "+1", "1e9", "\u0661\u0662", "nan", "inf", " "])
               | st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=60)
               | st.integers(0, 4000).map(lambda n: "7" * n))


@pytest.mark.fast
@seed(SEED)
@QUICK
@given(timestamp=_TIMESTAMPS)
def test_any_timestamp_is_verified_or_refused(timestamp: str) -> None:
    body = b'{"data": {}}'
    verifier = WebhookVerifier(PUBLIC)
    headers = {**sign(PRIVATE, body), TIMESTAMP_HEADER: timestamp}
    try:
        verifier.verify(body, headers)
    except InvalidSignature:
        return
    raise AssertionError(f"{timestamp!r} accepted with another timestamp's signature")


def _signed(body: bytes) -> dict[str, str]:
    return {"Content-Type": "application/json", **sign(PRIVATE, body)}


@pytest.fixture
def receiver(db_url: str) -> Iterator[ReceiverRig]:
    rig = ReceiverRig(db_url, PUBLIC)
    try:
        yield rig
    finally:
        rig.close()


def test_huge_timestamps_are_403_on_the_engines_port(receiver: ReceiverRig) -> None:
    body = json.dumps({"data": {"id": "e1", "event_type": "call.hangup"}}).encode()
    for timestamp in ["9" * 400, "9" * 4400, "1" * 20]:
        headers = {**_signed(body), TIMESTAMP_HEADER: timestamp}
        status, text = receiver.post(body, headers)
        assert status == 403, (timestamp[:10], status, text)

    @seed(SEED)
    @NETWORK
    @given(timestamp=_TIMESTAMPS.filter(lambda t: t.strip() != str(int(time.time()))))
    def check(timestamp: str) -> None:
        headers = {**_signed(body), TIMESTAMP_HEADER: timestamp}
        try:
            status, _ = receiver.post(body, headers)
        except ValueError:  # aiohttp's client refuses some header values itself
            return
        assert status == 403, timestamp[:20]

    check()
    assert receiver.rows() == []


# ------------------------------------------------------------- item 3: deeply nested JSON

def _nested(depth: int, escape: bool, dicts: bool) -> bytes:
    leaf = '"\\u00e9\\u0000"' if escape else '"x"'
    inner = leaf
    for _ in range(depth):
        inner = '{"k": ' + inner + "}" if dicts else "[" + inner + "]"
    return ('{"data": {"id": "deep-1", "event_type": "call.hangup", "payload": {"deep": '
            + inner + "}}}").encode()


@pytest.mark.fast
@seed(SEED)
@QUICK
@given(depth=st.integers(0, 3000), escape=st.booleans(), dicts=st.booleans())
def test_parse_envelope_of_any_nesting_is_an_envelope_or_bad(depth: int, escape: bool,
                                                             dicts: bool) -> None:
    body = _nested(depth, escape, dicts)
    try:
        env = parse_envelope(body)
    except BadEnvelope:
        assert depth + 3 > MAX_DEPTH
        return
    assert depth + 3 <= MAX_DEPTH
    json.loads(env.text)  # storable as it is


def test_deep_signed_bodies_are_400_never_500(receiver: ReceiverRig) -> None:
    for depth in (500, 990, 5000):
        body = _nested(depth, True, False)
        status, text = receiver.post(body, _signed(body))
        assert status == 400, (depth, status, text)

    @seed(SEED)
    @NETWORK
    @given(depth=st.integers(0, 1200), escape=st.booleans(), dicts=st.booleans())
    def check(depth: int, escape: bool, dicts: bool) -> None:
        body = _nested(depth, escape, dicts)
        status, text = receiver.post(body, _signed(body))
        assert status in (200, 400), (depth, status, text)
        assert (status == 400) == (depth + 3 > MAX_DEPTH)

    check()


# -------------------------------------------------------- item 4: malformed database URLs

_SECRET = "Abc@Def:Tail42"


def _cli(*args: str, env_url: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DIALER_", "TELNYX_"))}
    env["COLUMNS"] = "300"  # tables on one line each
    if env_url is not None:
        env["DIALER_DATABASE_URL"] = env_url
    return subprocess.run([sys.executable, "-m", "dialer.cli.main", *args], check=False,
                          capture_output=True, text=True, timeout=60, env=env, cwd=ROOT)


@pytest.mark.parametrize(("url", "says"), [
    (f"postgresql://u:{_SECRET}@host:5432/db", "cannot parse the database URL"),
    (f"postgresql://u:{_SECRET}@[::1/db", "cannot parse the database URL"),
    ("postgresql://u:Tail42@127.0.0.1:99999/db", "a port is 1 to 65535"),
    ("postgresql://u:Tail42@127.0.0.1:-5/db", "a port is 1 to 65535"),
    ("postgresql://u:Tail42@127.0.0.1:5432/db?sslmode=bogus", "sslmode 'bogus'"),
    ("postgresql://u:Tail42@127.0.0.1:5432/db?bogus=1", "unsupported parameters (bogus)"),
    (f"sqlite://u:{_SECRET}@host/x.db", "cannot parse the database URL"),
    ("sqlite://u:Tail42@host:99999/x.db", "a port is 1 to 65535"),
    ("sqlite://u:Tail42@host/x.db", "SQLite URLs are sqlite:///"),
    ("sqlite:///x.db?mode=bogus", "SQLite URLs take none"),
])
def test_malformed_database_urls_give_one_line_without_the_password(url: str,
                                                                   says: str) -> None:
    # Given as an option to a command that reads, and in the environment to `db upgrade`.
    done = (_cli("--database-url", url, "campaign", "list") if "postgresql" in url
            else _cli("db", "upgrade", env_url=url))
    out = done.stdout + done.stderr
    assert done.returncode != 0, out
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], out
    assert "Tail42" not in out and "internal error" not in out, out
    assert not (ROOT / "x.db").exists()


def test_sslmode_in_a_postgresql_url_is_understood(pg_url: str) -> None:
    done = _cli("--database-url", pg_url + "?sslmode=disable", "db", "current")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() not in ("", "none")


# ------------------------------------------------ item 9: concurrent `db upgrade` (PostgreSQL)

_UPGRADER = """
import sys
from campaigns.db.migrate import upgrade
from campaigns.errors import CampaignsError
url = sys.stdin.readline().strip()
print("ready", flush=True)
sys.stdin.readline()
try:
    upgrade(url)
except Exception as exc:
    print("failed:", type(exc).__name__, str(exc).splitlines()[0], flush=True)
    sys.exit(1)
print("done", flush=True)
"""


def test_concurrent_upgrades_of_a_fresh_postgresql_database(pg_admin_url: str) -> None:
    """Three `db upgrade` at once on one empty database: all succeed (an advisory lock
    serialises them; without it one failed on a duplicate pg_type key). The processes import
    first and start upgrading together (the CLI's start-up would spread them too far apart);
    three rounds."""
    for _ in range(3):
        url = new_pg_database(pg_admin_url, None)
        procs = [subprocess.Popen([sys.executable, "-c", _UPGRADER], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                  cwd=ROOT) for _ in range(3)]
        for p in procs:
            assert p.stdin is not None and p.stdout is not None
            p.stdin.write(url + "\n")
            p.stdin.flush()
            assert p.stdout.readline().strip() == "ready"
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        outputs = [p.communicate(timeout=120)[0] for p in procs]
        assert [p.returncode for p in procs] == [0, 0, 0], outputs
        done = _cli("--database-url", url, "db", "current")
        assert done.stdout.strip() == head_revision(), done.stdout + done.stderr


# -------------------------------------------------------- items 9 and 10: campaign names

@pytest.mark.fast
@seed(SEED)
@QUICK
@given(raw=st.text(max_size=30) | st.sampled_from(
    ["a\x1b[31mb", "a\u202eb", "x\u200by", "\ufeffx", "a\x01b", "\udcffx", "ｐｒｏｍｏ", "e\u0301",
     "a\u2028b", "a\u00a0b", "a\x85b", "\U000f0000"]))
def test_a_name_is_refused_or_safe_to_show_and_type(raw: str) -> None:
    try:
        name = normalize(raw)
    except InvalidSettings as exc:
        assert "\n" not in str(exc) and "\x1b" not in str(exc)
        return
    assert name == normalize(name) == unicodedata.normalize("NFKC", name)
    assert display(name) == name  # nothing to escape in a name we accept
    assert all(ch == " " or ch.isprintable() for ch in name)


@pytest.mark.fast
@seed(SEED)
@QUICK
@given(stored=st.text(max_size=30))
def test_any_stored_name_is_displayed_without_control_or_format_characters(stored: str) -> None:
    shown = display(stored)
    assert all(ch == " " or ch.isprintable() for ch in shown), repr(shown)


def _create(url: str, name: str) -> subprocess.CompletedProcess[str]:
    return _cli("--database-url", url, "campaign", "create", name, "--from", "+15551230000",
                "--connection-id", "conn")


def test_names_with_invisible_characters_are_refused_by_the_cli(db_url: str) -> None:
    for name in ["a\x1b[31mred", "a\u202eb", "x\u200by"]:
        done = _create(db_url, name)
        assert done.returncode != 0 and "not allowed" in done.stderr, done.stderr
    # Invalid UTF-8 on the command line (Python keeps it as surrogates): one clear line.
    done = subprocess.run([sys.executable, "-m", "dialer.cli.main", "--database-url", db_url,
                           "campaign", "create", b"bad\xff\xfe".decode("utf-8", "surrogateescape"),
                           "--from", "+15551230000", "--connection-id", "c"], check=False,
                          capture_output=True, cwd=ROOT)
    assert done.returncode != 0 and b"not valid UTF-8" in done.stderr, done.stderr
    assert b"internal error" not in done.stderr and len(done.stderr.splitlines()) == 1
    # Look-alikes are folded: a fullwidth spelling is the same name.
    assert _create(db_url, "promo").returncode == 0
    done = _create(db_url, "\uff50\uff52\uff4f\uff4d\uff4f")
    assert done.returncode != 0 and "already exists" in done.stderr, done.stderr


def test_hints_are_shell_quoted(db_url: str) -> None:
    name = "it's $(touch pwned) [bold]x"
    done = _create(db_url, name)
    assert done.returncode == 0, done.stderr
    hint = f"`dialer campaign start {shlex.quote(name)}`"
    assert hint in done.stderr, done.stderr
    assert shlex.split(hint.strip("`"))[-1] == name


def _store_raw_name(url: str, name: str) -> None:
    """A name as an older version stored it (no checks), straight into the table."""
    async def go() -> None:
        db = create_engine(url)
        try:
            async with session_factory(db)() as s, s.begin():
                s.add(Campaign(name=name, status="draft", from_number="+15551230000",
                               connection_id="conn", dial_settings={}, settings={}))
        finally:
            await db.dispose()
    asyncio.run(go())


def test_list_escapes_names_stored_by_an_older_version(db_url: str) -> None:
    raw = "a\x1b[2Jb\u202ec\x01"
    _store_raw_name(db_url, raw)
    done = _cli("--database-url", db_url, "campaign", "list")
    assert done.returncode == 0, done.stderr
    for ch in "\x1b\u202e\x01":
        assert ch not in done.stdout
    assert "a\\x1b[2Jb\\u202ec\\x01" in done.stdout
    done = _cli("--database-url", db_url, "campaign", "list", "--json")
    assert not any(ch in done.stdout for ch in "\x1b\u202e\x01"), done.stdout
    assert [c["name"] for c in json.loads(done.stdout)] == [raw]
    # Still found by its stored spelling (to stop or inspect it), and shown escaped.
    done = _cli("--database-url", db_url, "campaign", "show", raw)
    assert done.returncode == 0 and "\x1b" not in done.stdout, done.stderr
    done = _cli("--database-url", db_url, "campaign", "show", "nothing")
    assert done.returncode != 0 and "\x1b" not in done.stderr and "\\x1b" in done.stderr


# ------------------------------------------- item 12: slow requests, connection cap, log lines

async def _serve_receiver(url: str, limits: HttpLimits
                          ) -> tuple[web.AppRunner, int, EventStore, AsyncEngine]:
    db = create_engine(url)
    store = EventStore(session_factory(db), lambda urgent: None)
    store.start()
    receiver = Receiver(store, WebhookVerifier(PUBLIC), Metrics(), dict)
    runner, port = await start_site(receiver.app(), "127.0.0.1", 0, limits=limits)
    return runner, port, store, db


async def _closed(reader: asyncio.StreamReader) -> bytes:
    """Everything until the server closes the connection (generous bound: never a hang)."""
    data = b""
    while chunk := await asyncio.wait_for(reader.read(65536), 60):
        data += chunk
    return data


async def _post_webhook(port: int, event_id: str, headers: dict[str, str] | None = None) -> int:
    body = json.dumps({"data": {"id": event_id, "event_type": "call.hangup",
                                "payload": {}}}).encode()
    async with aiohttp.ClientSession() as http, http.post(
            f"http://127.0.0.1:{port}{WEBHOOK_PATH}", data=body,
            headers={**_signed(body), **(headers or {})}) as resp:
        return resp.status


def test_slow_requests_are_cut_off_and_connections_capped(
        db_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(receiver_module, "BODY_TIMEOUT_SECS", 0.5)
    limits = HttpLimits(header_timeout_secs=0.5, max_connections=8)

    async def go() -> None:
        runner, port, store, db = await _serve_receiver(db_url, limits)
        try:
            # Eight connections that never finish their head fill the cap; a ninth is closed at
            # once; the eight are closed at their deadline; then a webhook is served.
            slow = [await asyncio.open_connection("127.0.0.1", port) for _ in range(8)]
            for _, writer in slow:
                writer.write(b"POST /webhooks/telnyx HTTP/1.1\r\nHost: x\r\n")
            await asyncio.gather(*(w.drain() for _, w in slow))
            await asyncio.sleep(0.1)
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert await _closed(reader) == b""  # refused: over the cap
            writer.close()
            for reader, writer in slow:
                assert await _closed(reader) == b""  # head deadline
                writer.close()
            assert await _post_webhook(port, "after-slow") == 200
            # A body that stops coming: 408, and the connection is closed.
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"POST /webhooks/telnyx HTTP/1.1\r\nHost: x\r\nContent-Type: "
                         b"application/json\r\nContent-Length: 100\r\n\r\n{\"data\":")
            answer = await _closed(reader)
            assert answer.startswith(b"HTTP/1.1 408"), answer[:100]
            writer.close()
            # An idle kept-alive connection is closed at the next head's deadline too.
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert (await _closed(reader)).startswith(b"HTTP/1.1 200")
            writer.close()
            # Malformed requests: a 400 each, logged as one line (no ERROR, no traceback).
            caplog.clear()
            for _ in range(20):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(b"POST /webhooks/telnyx HTTP/1.1\r\nHost: x\r\n"
                             b"Content-Length: GARBAGE\r\n\r\n")
                assert (await _closed(reader)).split(b"\r\n")[0].endswith(b" 400 Bad Request")
                writer.close()
        finally:
            await runner.cleanup()
            await store.stop()
            await db.dispose()

    with caplog.at_level(logging.DEBUG):
        asyncio.run(go())
    worse = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert worse == [], [r.getMessage() for r in worse]
    lines = [r.getMessage() for r in caplog.records
             if r.name == "dialer.http" and "Error handling request" in r.getMessage()]
    # Twenty malformed requests within a second or two: one line a second, the rest counted.
    assert 1 <= len(lines) <= 10 and all("\n" not in line for line in lines), lines


def test_huge_timestamps_are_403_on_a_webhook_workers_port(pg_url: str) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "dialer.engine.webhook_workers"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=ROOT)
    try:
        assert proc.stdin is not None and proc.stdout is not None
        settings = WorkerSettings(pg_url, "127.0.0.1", 0, PUBLIC, False)
        proc.stdin.write(json.dumps(settings.__dict__).encode() + b"\n")
        proc.stdin.flush()
        port = int(json.loads(proc.stdout.readline())["ready"])

        async def go() -> list[int]:
            return [await _post_webhook(port, f"ts-{n}", {TIMESTAMP_HEADER: ts})
                    for n, ts in enumerate(["9" * 400, "9" * 4400, "1" * 16, "0" * 400])]

        assert asyncio.run(go()) == [403, 403, 403, 403]
        assert asyncio.run(_post_webhook(port, "good")) == 200
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        proc.wait(30)
