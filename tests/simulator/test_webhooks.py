"""Webhook delivery: per-call order, retries while the receiver is down, giving up, the target
URL, and the delivery faults (duplicate, reorder, delay, drop)."""

from __future__ import annotations

import asyncio
import socket
from collections import Counter

import aiohttp

from dialer.simulator import FaultConfig
from tests.simulator.conftest import Receiver, SimFactory, dial

HUMAN = "+15558000001"
BUSY = "+15558000002"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_retries_until_the_receiver_comes_up_and_keeps_order(
    make_sim: SimFactory, http: aiohttp.ClientSession
) -> None:
    port = _free_port()
    late = Receiver(port=port)
    sim = await make_sim(default_webhook_url=late.url, webhook_max_attempts=50,
                         pinned={HUMAN: "human"}, speed=200.0)
    cids = [(await dial(http, sim, HUMAN, answering_machine_detection="detect")).body["data"][
        "call_control_id"] for _ in range(3)]
    await asyncio.sleep(0.6)  # every call has ended; nothing could be delivered yet
    assert sim.stats()["webhooks_sent"] == 0 and sim.stats()["webhook_delivery_failures"] > 0
    await late.start(port)
    try:
        assert await sim.wait_idle(timeout=10)
        for cid in cids:
            assert late.types(cid) == ["call.initiated", "call.answered",
                                       "call.machine.detection.ended", "call.hangup"]
            assert late.for_call(cid)[0].body["meta"]["attempt"] > 1
            ledger = sim.find_call(cid)
            assert ledger is not None and ledger.deliveries_ok == 4 and ledger.deliveries_failed > 0
            assert all(e["delivery"] == "ok" for e in ledger.events)
    finally:
        await late.stop()


async def test_a_500_from_the_receiver_is_retried_with_a_higher_attempt(
    make_sim: SimFactory, receiver: Receiver, http: aiohttp.ClientSession
) -> None:
    receiver.fail_next = 2
    sim = await make_sim(pinned={BUSY: "busy"})
    cid = (await dial(http, sim, BUSY)).body["data"]["call_control_id"]
    await receiver.wait_hangup(cid)
    first = receiver.for_call(cid)[0]
    assert first.event_type == "call.initiated" and first.body["meta"]["attempt"] == 3
    assert receiver.for_call(cid)[1].body["meta"]["attempt"] == 1
    assert sim.stats()["webhook_delivery_failures"] == 2


async def test_gives_up_after_the_last_attempt(
    make_sim: SimFactory, http: aiohttp.ClientSession
) -> None:
    nobody = f"http://127.0.0.1:{_free_port()}/webhooks"
    sim = await make_sim(default_webhook_url=nobody, webhook_max_attempts=3,
                         pinned={BUSY: "busy"})
    await dial(http, sim, BUSY)
    assert await sim.wait_idle(timeout=5)
    ledger = sim.ledger[0]
    assert [e["delivery"] for e in ledger.events] == ["failed", "failed"]
    assert ledger.deliveries_failed == 6 and ledger.deliveries_dropped == 2
    assert sim.stats()["webhooks_given_up"] == 2


async def test_dial_webhook_url_wins_and_no_url_means_not_delivered(
    make_sim: SimFactory, receiver: Receiver, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim(default_webhook_url=None, pinned={BUSY: "busy"})
    await dial(http, sim, BUSY)
    cid = (await dial(http, sim, BUSY, webhook_url=receiver.url)).body["data"]["call_control_id"]
    await receiver.wait_hangup(cid)
    assert await sim.wait_idle(timeout=5)
    assert {d.payload["call_control_id"] for d in receiver.deliveries} == {cid}
    unsent = sim.ledger[0]
    assert [e["delivery"] for e in unsent.events] == ["undeliverable", "undeliverable"]
    assert sim.stats()["webhooks_undeliverable"] == 2


async def test_duplicate_fault_delivers_each_event_twice_with_the_same_id(
    make_sim: SimFactory, receiver: Receiver, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim(faults=FaultConfig(duplicate=1.0), pinned={BUSY: "busy"})
    cid = (await dial(http, sim, BUSY)).body["data"]["call_control_id"]
    assert await sim.wait_idle(timeout=5)
    ids = Counter(d.data["id"] for d in receiver.for_call(cid))
    assert len(ids) == 2 and set(ids.values()) == {2}
    assert sim.stats()["webhooks_duplicated"] == 2


async def test_reorder_fault_delivers_hangup_before_earlier_events(
    make_sim: SimFactory, receiver: Receiver, http: aiohttp.ClientSession
) -> None:
    # Held until the call's next event however long it takes: the hangup comes first.
    sim = await make_sim(faults=FaultConfig(reorder=1.0, reorder_hold_secs=60),
                         pinned={HUMAN: "human"})
    cid = (await dial(http, sim, HUMAN, answering_machine_detection="detect")).body["data"][
        "call_control_id"]
    assert await sim.wait_idle(timeout=5)
    types = receiver.types(cid)
    assert types[0] == "call.hangup"
    assert sorted(types) == sorted(["call.initiated", "call.answered",
                                    "call.machine.detection.ended", "call.hangup"])


async def test_a_reordered_event_is_not_held_until_the_hangup(
    make_sim: SimFactory, receiver: Receiver, http: aiohttp.ClientSession
) -> None:
    # A person talks 20-60 simulated seconds (0.2-0.6 s at 100x)... at 5x, 4-12 s: the held
    # `call.answered` (no AMD: nothing follows it until the dialer acts) goes out after 0.5 s.
    sim = await make_sim(faults=FaultConfig(reorder=1.0), pinned={HUMAN: "human"}, speed=5.0)
    cid = (await dial(http, sim, HUMAN)).body["data"]["call_control_id"]
    await receiver.wait_event(cid, "call.answered", timeout=3.0)
    assert "call.hangup" not in receiver.types(cid)


async def test_reorder_fault_sometimes_swaps_neighbours(
    make_sim: SimFactory, receiver: Receiver, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim(faults=FaultConfig(reorder=0.5), pinned={HUMAN: "human"})
    cids = [(await dial(http, sim, HUMAN, answering_machine_detection="detect")).body["data"][
        "call_control_id"] for _ in range(60)]  # 20 calls all came out swapped ~7% of runs
    assert await sim.wait_idle(timeout=20)
    in_order = ["call.initiated", "call.answered", "call.machine.detection.ended", "call.hangup"]
    orders = [receiver.types(cid) for cid in cids]
    assert all(sorted(o) == sorted(in_order) for o in orders)
    assert any(o != in_order for o in orders) and any(o == in_order for o in orders)


async def test_delay_fault_holds_webhooks_back(
    make_sim: SimFactory, receiver: Receiver, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim(faults=FaultConfig(delay=1.0, delay_secs=0.3), pinned={BUSY: "busy"})
    started = asyncio.get_running_loop().time()
    cid = (await dial(http, sim, BUSY)).body["data"]["call_control_id"]
    await receiver.wait_hangup(cid)
    assert receiver.for_call(cid)[0].at - started >= 0.3
    assert receiver.types(cid) == ["call.initiated", "call.hangup"]


async def test_drop_fault_never_delivers(
    make_sim: SimFactory, receiver: Receiver, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim(faults=FaultConfig(drop=1.0), pinned={BUSY: "busy"})
    await dial(http, sim, BUSY)
    assert await sim.wait_idle(timeout=5)
    assert receiver.deliveries == []
    ledger = sim.ledger[0]
    assert [e["delivery"] for e in ledger.events] == ["dropped", "dropped"]
    assert ledger.deliveries_dropped == 2 and sim.stats()["webhooks_dropped"] == 2
