"""Security of the webhook receiver and of secrets.

- Webhooks: unsigned, forged, tampered, re-signed with another key, and replayed with a stale (or
  future) timestamp are refused with 403 and store nothing; bodies over the size limit get 413
  (with or without Content-Length); a replay inside the 300 s window is acknowledged and ignored
  (the event id is already stored).
- Secrets: the Telnyx API key and the database password never appear in what the product prints
  (logs of `dialer run`, verbose or not, including a refused key; `campaign show/list` output;
  errors when the database is down or its URL is malformed; `--help`) nor on /healthz, /metrics.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy.engine import make_url

from dialer.engine.receiver import MAX_BODY_BYTES
from dialer.telnyx.signatures import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    generate_keypair,
    sign,
)
from tests.engine.helpers import numbers, seed
from tests.reliability.conftest import RECEIVER_PRIVATE, RECEIVER_PUBLIC
from tests.reliability.harness import (
    PY,
    ROOT,
    DbProbe,
    EngineProcess,
    ReceiverRig,
    SimProcess,
    _env,
    event_body,
    free_port,
    wait_until,
)

PRIVATE, PUBLIC = RECEIVER_PRIVATE, RECEIVER_PUBLIC
OTHER, _ = generate_keypair()
JSON = {"Content-Type": "application/json"}


def test_unsigned_forged_resigned_and_replayed_webhooks_get_403(receiver: ReceiverRig) -> None:
    body = event_body()
    now = int(time.time())
    good = sign(PRIVATE, body, now)
    forged_sig = base64.b64encode(os.urandom(64)).decode()
    cases = {
        "unsigned": {},
        "timestamp only": {TIMESTAMP_HEADER: str(now)},
        "signature only": {SIGNATURE_HEADER: good[SIGNATURE_HEADER]},
        "forged signature": {SIGNATURE_HEADER: forged_sig, TIMESTAMP_HEADER: str(now)},
        "not base64": {SIGNATURE_HEADER: "!!!", TIMESTAMP_HEADER: str(now)},
        "another key": sign(OTHER, body, now),
        "signature of another timestamp": {SIGNATURE_HEADER: good[SIGNATURE_HEADER],
                                           TIMESTAMP_HEADER: str(now + 1)},
        # 30 s past the 300 s tolerance: the cases are posted one after another on a machine
        # that may be slow, and `now` must not drift back inside the tolerance meanwhile.
        "stale (330 s)": sign(PRIVATE, body, now - 330),
        "replay a day later": sign(PRIVATE, body, now - 86400),
        "future (330 s)": sign(PRIVATE, body, now + 330),
    }
    for name, headers in cases.items():
        status, text = receiver.post(body, {**JSON, **headers})
        assert status == 403, (name, status, text)
    tampered = body.replace(b"normal_clearing", b"user_busy")
    assert receiver.post(tampered, {**JSON, **good})[0] == 403
    assert receiver.rows() == []
    # Inside the window: accepted once; a replay of the very same request changes nothing.
    assert receiver.post(body, {**JSON, **sign(PRIVATE, body, now - 290)})[0] == 200
    status, text = receiver.post(body, {**JSON, **good})
    assert status == 200 and len(receiver.rows()) == 1
    assert receiver.metrics.webhooks.labels("duplicate")._value.get() == 1
    assert receiver.metrics.webhooks.labels("forbidden")._value.get() == len(cases) + 1


def test_request_bodies_have_a_size_limit(receiver: ReceiverRig) -> None:
    big = event_body(payload={"call_control_id": "v3:x", "pad": "x" * MAX_BODY_BYTES})
    assert len(big) > MAX_BODY_BYTES
    # Signed or not, with a Content-Length...
    assert receiver.post(big, {**JSON, **sign(PRIVATE, big)})[0] == 413
    assert receiver.post(big, JSON)[0] == 413

    # ...and streamed without one (chunked).
    async def chunks() -> object:
        for i in range(0, len(big), 65536):
            yield big[i:i + 65536]

    async def chunked() -> int:
        resp = await receiver.client.post("/webhooks/telnyx", data=chunks(),
                                          headers={**JSON, **sign(PRIVATE, big)})
        return resp.status
    assert receiver.loop.run_until_complete(chunked()) == 413
    assert receiver.rows() == []
    # Just under the limit is fine.
    pad = MAX_BODY_BYTES - len(event_body(payload={"call_control_id": "v3:x", "pad": ""})) - 10
    ok = event_body(payload={"call_control_id": "v3:x", "pad": "x" * pad})
    assert len(ok) <= MAX_BODY_BYTES
    assert receiver.post(ok, {**JSON, **sign(PRIVATE, ok)})[0] == 200


# ------------------------------------------------------------------------------- secrets

API_KEY = "KEYsecret-0a1b2c3d4e5f"
WRONG_KEY = "KEYwrong-9f8e7d6c5b4a"
DB_PASSWORD = "PWsecret-5e6f7a8b"


async def _cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        PY, "-m", "dialer.cli.main", *args, cwd=ROOT, env=_env(env),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    return int(proc.returncode or 0), out.decode(errors="replace"), err.decode(errors="replace")


def _secret_free(text: str, where: str) -> None:
    for secret in (API_KEY, WRONG_KEY, DB_PASSWORD):
        assert secret not in text, f"{secret!r} printed by {where}:\n{text[-3000:]}"


@pytest.mark.slow
async def test_secrets_never_appear_in_output(pg_url: str, tmp_path: Path) -> None:
    url = make_url(pg_url).set(password=DB_PASSWORD).render_as_string(hide_password=False)
    assert DB_PASSWORD in url  # the test server trusts any password; the URL carries one
    cid = await seed(url, "secret", numbers(8), max_attempts=1)
    dead_port = free_port()
    down_url = make_url(url).set(port=dead_port).render_as_string(hide_password=False)
    env = {"DIALER_DATABASE_URL": url, "TELNYX_API_KEY": API_KEY}
    # The CLI, with the secrets in the environment and on the command line (run meanwhile).
    cli = asyncio.gather(
        _cli("campaign", "show", "secret", env=env),
        _cli("--database-url", url, "campaign", "show", "secret", "--json"),
        _cli("--database-url", down_url, "-v", "campaign", "show", "secret"),
        _cli("--database-url", f"postgresql://u:{DB_PASSWORD}@host:notaport/db",
             "campaign", "list"),
        _cli("run", "--help", env=env),
    )
    sim = SimProcess(tmp_path, speed=30, seed=1, private_key=PRIVATE, api_key=API_KEY)
    await sim.start()
    engine: EngineProcess | None = None
    try:
        # `dialer run -v` with a key Telnyx refuses: the campaign pauses; nothing leaks.
        engine = EngineProcess(tmp_path, url, sim, PUBLIC, api_key=WRONG_KEY,
                               api_key_in_env=True, time_scale=30)
        engine.cmd.insert(engine.cmd.index("run"), "-v")  # DEBUG logging
        engine.spawn()
        await engine.wait_healthy()
        probe = DbProbe(pg_url)

        async def paused() -> bool:
            return await probe.val(f"SELECT status FROM campaigns WHERE id = {cid}") == "paused"
        await wait_until(paused, 60, what="campaign paused for a refused key")
        assert engine.stop() == 0
        last_error = await probe.val(f"SELECT last_error FROM campaigns WHERE id = {cid}")
        assert "TELNYX_API_KEY" in last_error  # says what to fix, not what the key was
        _secret_free(last_error, "the campaign's last_error")

        # The right key: the campaign finishes; health and metrics say nothing secret.
        await _resume(url, "secret")
        engine.env["TELNYX_API_KEY"] = API_KEY
        engine.spawn()
        await engine.wait_healthy()
        async with aiohttp.ClientSession() as http:
            for path in ("/healthz", "/metrics"):
                async with http.get(engine.base + path) as resp:
                    _secret_free(await resp.text(), path)

        async def completed() -> bool:
            return await probe.val(
                f"SELECT status FROM campaigns WHERE id = {cid}") == "completed"
        await wait_until(completed, 60, what="campaign completed")
        assert engine.stop() == 0
        await probe.close()
        logs = engine.logs()
        assert "DEBUG" in logs and "401" in logs  # verbose, and the refusal was logged
        _secret_free(logs, "dialer run -v")
        _secret_free(sim.proc.output(), "dialer simulator")
        outputs = await cli
        for i, (_, out, err) in enumerate(outputs):
            _secret_free(out + err, f"CLI call {i}")
        assert outputs[0][0] == 0 and "secret" in outputs[0][1]
        assert json.loads(outputs[1][1])["name"] == "secret"
        assert outputs[2][0] != 0 and outputs[2][2].strip()  # a clear error, no password
    finally:
        if engine is not None and engine.current is not None and engine.current.alive():
            engine.kill9()
        await sim.stop()


async def _resume(url: str, name: str) -> None:
    from campaigns.db.engine import create_engine, session_factory
    from campaigns.service import change_status

    db = create_engine(url)
    try:
        async with session_factory(db)() as s, s.begin():
            await change_status(s, name, "resume")
    finally:
        await db.dispose()
