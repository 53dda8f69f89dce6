"""How soon a person hears the first words: seconds from the human verdict (`call.answered`
without AMD; the event's `occurred_at`) to the first command for them (the script's first
gather) being sent, at a given dial rate, on PostgreSQL (a throwaway server).

The simulator runs as its own process (every call a person, speed 10: calls last a few seconds);
the engine runs here with a script campaign.

    .venv/bin/python bench/bench_first_words.py [--rate 100] [--secs 20] [--plain]
        [--webhook-workers N] [--no-baseline]

The machine's speed moves by 2x within an hour: unless `--no-baseline`, a trivial aiohttp
server's CPU per request is measured first (as in bench_ratios.py), in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import queued_contacts, start_simulator
from campaigns.db.engine import create_engine, session_factory
from campaigns.db.migrate import upgrade
from campaigns.db.models import Contact
from campaigns.db.types import utcnow
from campaigns.service import change_status, create_campaign
from dialer import aio
from dialer.engine import actions
from dialer.engine.runner import Engine, EngineConfig
from dialer.telnyx.signatures import generate_keypair, public_key_from_private

SPEED = 10.0
SCRIPT = {
    "start": {"say": "Hello {first_name|there}, this is Acme Clinic. Press 1 to confirm, 2 to talk "
                     "to us, 9 to stop these calls.",
              "keys": {"1": "confirm", "2": "label:callback", "9": "opt_out"}},
    "confirm": {"say": "Thank you.", "label": "confirmed"},
}


async def seed(url: str, n: int, rate: float, plain: bool) -> None:
    from sqlalchemy import insert, select

    from campaigns.db.models import Campaign
    db = create_engine(url)
    async with session_factory(db)() as s, s.begin():
        await create_campaign(s, "words", {
            "from": "+14155550100", "connection_id": "bench", "cps": rate,
            "max_concurrent": 10000, "max_attempts": 1, "calling_hours": "00:00-24:00",
            "calling_days": "mon-sun", "compliance_rules": "off",  # any hour of the day
            **({"on_human": "speak", "message_text": "Hello, this is Acme Clinic."} if plain
               else {"on_human": "script", "script": SCRIPT, "opt_out_digit": "9"})})
        cid = (await s.scalars(select(Campaign.id).where(Campaign.name == "words"))).one()
        rows = queued_contacts(cid, n, utcnow())
        for k in range(0, n, 5000):
            await s.execute(insert(Contact), rows[k:k + 5000])
        await change_status(s, "words", "start")
    await db.dispose()


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, default=100.0)
    ap.add_argument("--secs", type=float, default=20.0)
    ap.add_argument("--plain", action="store_true",
                    help="a plain spoken message instead of the script (for comparison)")
    ap.add_argument("--no-baseline", action="store_true",
                    help="skip the trivial server measured first (the machine's speed now)")
    ap.add_argument("--webhook-workers", type=int, default=0,
                    help="webhook worker processes (`dialer run --webhook-workers`)")
    args = ap.parse_args()
    private, _ = generate_keypair()
    baseline = {} if args.no_baseline else await asyncio.to_thread(_trivial, private)
    tmp = Path(tempfile.mkdtemp(prefix="bench-words-"))
    (tmp / "mix.toml").write_text("[mix]\nhuman = 1\n")
    sim, sim_url = start_simulator(private, speed=SPEED, scenarios=tmp / "mix.toml",
                                   raise_priority=False)
    from tests.pgserver import start_server

    pg = start_server()
    try:
        url = pg.url()
        upgrade(url)
        await seed(url, int(args.rate * args.secs), args.rate, args.plain)
        engine = Engine(EngineConfig(
            database_url=url, api_url=sim_url + "/v2", api_key="bench",
            public_key=public_key_from_private(private), port=0, cps=args.rate,
            max_concurrent=100000, time_scale=SPEED, webhook_workers=args.webhook_workers))
        await engine.start()
        started = time.monotonic()
        await asyncio.sleep(args.secs + 8)
        await engine.shutdown()
        wall = time.monotonic() - started
        split = await _split(url)
    finally:
        sim.terminate()
        sim.wait(timeout=10)
        pg.cleanup()  # its data directory too (~115 MB a run)
        shutil.rmtree(tmp, ignore_errors=True)
    samples = sorted(actions.FIRST_WORDS_SECS)
    n = len(samples)

    def pct(p: float) -> float | None:
        return round(samples[min(n - 1, int(p * n))] * 1000, 1) if n else None
    print(json.dumps({
        "rate": args.rate, "secs": args.secs, "plain": args.plain,
        "webhook_workers": args.webhook_workers, "wall_secs": round(wall, 1),
        "people": n,
        "ms_p50": pct(0.50), "ms_p90": pct(0.90), "ms_p99": pct(0.99),
        "ms_max": round(samples[-1] * 1000, 1) if n else None,
        "ms_mean": round(statistics.fmean(samples) * 1000, 1) if n else None,
        **split, **baseline,
    }))


def _trivial(private: str) -> dict[str, float]:
    """A trivial aiohttp server's CPU per request and p99 now (bench_ratios' baseline)."""
    from bench.bench_ratios import signed_bodies, trivial_server

    base = trivial_server(signed_bodies(private, 5000), 32)
    return {"trivial_cpu_us_per_request": round(base["cpu_us_per_request"], 1),
            "trivial_p99_ms": round(base["p99_ms"], 2)}


async def _split(url: str) -> dict[str, float | None]:
    """Where the time goes, from the stored call.answered events: the simulator's delivery
    (occurred -> received) and the engine's processing (received -> processed), p50/p99 in ms."""
    from sqlalchemy import select

    from campaigns.db.models import WebhookEvent
    db = create_engine(url)
    async with session_factory(db)() as s:
        rows = (await s.execute(select(WebhookEvent.occurred_at, WebhookEvent.received_at,
                                       WebhookEvent.processed_at)
                                .where(WebhookEvent.event_type == "call.answered"))).all()
    await db.dispose()
    deliver = sorted((r[1] - r[0]).total_seconds() for r in rows if r[0] and r[1])
    process = sorted((r[2] - r[1]).total_seconds() for r in rows if r[1] and r[2])

    def p(xs: list[float], q: float) -> float | None:
        return round(xs[min(len(xs) - 1, int(q * len(xs)))] * 1000, 1) if xs else None
    return {"delivery_ms_p50": p(deliver, 0.5), "delivery_ms_p99": p(deliver, 0.99),
            "processing_ms_p50": p(process, 0.5), "processing_ms_p99": p(process, 0.99)}


if __name__ == "__main__":
    aio.run(main())
