"""Bad input gets a documented 4xx Telnyx error body: never a 500, never a crash, nothing placed."""

from __future__ import annotations

import json
import random
from typing import Any

import aiohttp

from tests.simulator.conftest import SimFactory, dial, dial_body, request


async def test_authentication(make_sim: SimFactory) -> None:
    sim = await make_sim(api_key="secret", default_webhook_url=None)
    async with aiohttp.ClientSession() as anon:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "secret"},
                        {"Authorization": "Basic secret"}):
            answer = await request(anon, "POST", sim.api_url + "/calls", dial_body("+15550000001"),
                                   headers=headers)
            assert answer.status == 401, headers
            assert answer.body["errors"][0]["code"] == "10009"
            got = await request(anon, "GET", sim.api_url + "/calls/v3:x", headers=headers)
            assert got.status == 401
        ok = await request(anon, "POST", sim.api_url + "/calls", dial_body("+15550000001"),
                           headers={"Authorization": "Bearer secret"})
        assert ok.status == 200
    assert len(sim.ledger) == 1


async def test_without_api_key_any_bearer_token_but_not_none(make_sim: SimFactory) -> None:
    sim = await make_sim(default_webhook_url=None)
    async with aiohttp.ClientSession() as anon:
        missing = await request(anon, "POST", sim.api_url + "/calls", dial_body("+15550000001"))
        assert missing.status == 401
        ok = await request(anon, "POST", sim.api_url + "/calls", dial_body("+15550000001"),
                           headers={"Authorization": "Bearer anything"})
        assert ok.status == 200
        stats = await request(anon, "GET", sim.api_url.removesuffix("/v2") + "/_simulator/stats")
        assert stats.status == 200 and stats.body["data"]["calls_placed"] == 1


async def test_validation_lists_every_problem_with_telnyx_codes(
    make_sim: SimFactory, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim(default_webhook_url=None)
    empty = await request(http, "POST", sim.api_url + "/calls", {})
    assert empty.status == 422
    assert [(e["code"], e["source"]["pointer"]) for e in empty.body["errors"]] == [
        ("10004", "/to"), ("10004", "/from"), ("10004", "/connection_id")]
    bad = await dial(http, sim, "12345", timeout_secs=1, answering_machine_detection="maybe",
                     time_limit_secs="long")
    assert bad.status == 422
    codes = {e["source"]["pointer"]: e["code"] for e in bad.body["errors"]}
    assert codes == {"/to": "10016", "/timeout_secs": "10033",
                     "/answering_machine_detection": "10032", "/time_limit_secs": "10002"}
    assert all(e["title"] and e["detail"] for e in bad.body["errors"])
    assert sim.ledger == [] and sim.stats()["rejected_422"] == 2


async def test_malformed_bodies(make_sim: SimFactory, http: aiohttp.ClientSession) -> None:
    sim = await make_sim(default_webhook_url=None)
    url = sim.api_url + "/calls"
    cases: list[tuple[bytes, int]] = [
        (b"{not json", 400),
        (b'{"to": "+15550000001",', 400),
        (b"\xff\xfe\x00garbage", 400),
        (b"[1, 2, 3]", 400),
        (b'"a string"', 400),
        (b"null", 400),
        (b'{"to": NaN}', 400),
        (b"[" * 100_000 + b"]" * 100_000, 400),
        (json.dumps({**dial_body("+15550000001"), "pad": "x" * 2_000_000}).encode(), 413),
        (json.dumps({**dial_body("+15550000001"), "to": ["+15550000001", 5]}).encode(), 422),
        (json.dumps({**dial_body("+15550000001"), "to": []}).encode(), 422),
        (json.dumps({**dial_body("+15550000001"), "to": None}).encode(), 422),
        (json.dumps({**dial_body("+15550000001"), "connection_id": 7}).encode(), 422),
        (json.dumps({**dial_body("+15550000001"), "client_state": "***"}).encode(), 422),
        (json.dumps({**dial_body("+15550000001"),
                     "answering_machine_detection_config": []}).encode(), 422),
        (json.dumps({**dial_body("+15550000001"), "custom_headers": "x"}).encode(), 422),
        (json.dumps({**dial_body("+15550000001"), "command_id": {"a": 1}}).encode(), 422),
        (json.dumps({**dial_body("+15550000001"), "no_such_field": 1}).encode(), 422),
    ]
    for raw, status in cases:
        answer = await request(http, "POST", url, raw=raw)
        assert answer.status == status, (raw[:60], answer.status, answer.body)
        assert isinstance(answer.body, dict) and answer.body["errors"][0]["code"], raw[:60]
    assert sim.ledger == []
    # Commands and the control API are just as careful.
    cid = (await dial(http, sim, "+15550000001")).body["data"]["call_control_id"]
    for raw in (b"{oops", b"[]", b"\xff"):
        answer = await request(http, "POST", f"{sim.api_url}/calls/{cid}/actions/hangup", raw=raw)
        assert answer.status == 400 and answer.body["errors"], raw
    answer = await request(http, "POST", sim.api_url.removesuffix("/v2") + "/_simulator/faults",
                           raw=b"{oops")
    assert answer.status == 400
    assert sim.ledger[0].ended_at is None  # the bad hangups did nothing


async def test_unknown_routes_and_methods_answer_json_errors(
    make_sim: SimFactory, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim(default_webhook_url=None)
    for method, path in [("GET", "/v2/nothing"), ("DELETE", "/v2/calls"), ("GET", "/v2/calls"),
                         ("PUT", "/v2/calls/v3:x/actions/hangup")]:
        answer = await request(http, method, sim.api_url.removesuffix("/v2") + path)
        assert 400 <= answer.status < 500, (method, path)
        assert answer.body["errors"][0]["code"], (method, path)


async def test_random_bodies_never_give_a_500(make_sim: SimFactory,
                                              http: aiohttp.ClientSession) -> None:
    """A seeded fuzz of dial bodies: every field gets values of random types."""
    sim = await make_sim(default_webhook_url=None, speed=1000.0)
    rng = random.Random(1234)
    values: list[Any] = [None, True, 0, -1, 2**40, 1.5, "", "x", "+15550000001", "sip:a@b.c",
                         [], ["+15550000001"], [1], {}, {"a": 1}, "aGk=", "premium", 30]
    fields = ["to", "from", "connection_id", "timeout_secs", "time_limit_secs",
              "answering_machine_detection", "answering_machine_detection_config", "client_state",
              "command_id", "webhook_url", "audio_url", "media_name", "retry_on_timeout", "record",
              "custom_headers", "sip_headers", "link_to", "bridge_intent", "webhook_urls"]
    statuses = set()
    for _ in range(300):
        body = dial_body("+15550000001")
        for name in rng.sample(fields, rng.randint(1, 6)):
            body[name] = rng.choice(values)
        answer = await request(http, "POST", sim.api_url + "/calls", body)
        statuses.add(answer.status)
        assert answer.status in (200, 400, 422), (body, answer.body)
    assert {200, 422} <= statuses
    assert await sim.wait_idle(timeout=10)
