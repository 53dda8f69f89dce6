"""A dial that never left (connection refused) is not an attempt: its contact goes back to the
queue at once, instead of waiting minutes for reconciliation of a call that cannot exist."""

from __future__ import annotations

import socket

from campaigns.db.models import AttemptState, ContactStatus
from dialer.engine.runner import Engine, EngineConfig
from tests.engine.helpers import attempts_of, contacts_of, numbers, seed, wait_for


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_refused_dials_are_not_attempts(db_url: str) -> None:
    cid = await seed(db_url, "unreachable", numbers(3), max_attempts=1)
    engine = Engine(EngineConfig(database_url=db_url, api_url=f"http://127.0.0.1:{_closed_port()}/v2",
                                 api_key="k", public_key=None, insecure_webhooks=True, port=0,
                                 cps=5))
    engine.client.resend_backoff_secs = 0.01
    await engine.start()
    try:
        async def _refused() -> bool:
            attempts = await attempts_of(db_url)
            return len(attempts) >= 3 and all(a.state == AttemptState.NOT_PLACED
                                              for a in attempts[:3])
        await wait_for(_refused, timeout=30)
    finally:
        await engine.shutdown()
    first = (await attempts_of(db_url))[:3]
    # Answered "not sent": not placed, nothing left for reconciliation (a dial whose outcome is
    # unknown would wait for it), the contact not charged and still to be dialed.
    assert all(a.error_code == "not_sent" and a.reconcile_after is None for a in first)
    contacts = await contacts_of(db_url, cid)
    assert all(c.status != ContactStatus.DONE and c.attempts <= 1 for c in contacts)
