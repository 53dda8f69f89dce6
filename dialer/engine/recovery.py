"""Engine instances and recovery: heartbeats, dead engines, and the work they left.

Every engine has a row in `engine_instances`, kept fresh by its heartbeat. An engine whose
heartbeat is stale, or whose process on this host is gone, is dead: the attempts it claimed but
never recorded a dial result for are taken over. Recovery runs at start and then every second,
so a dead engine's work is picked up however soon it was restarted.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from campaigns.db.types import utcnow
from campaigns.due import ENGINE_LIVE_SECS
from campaigns.settings import settings_of
from dialer.engine import flow, script_events
from dialer.engine.attempts import PendingAction, Timing, pending_action
from dialer.engine.claims import DialJob
from dialer.engine.clock import Clock
from dialer.engine.dispatcher import RESEND_WINDOW_SECS, DialQueue
from dialer.engine.store import calls as call_store
from dialer.engine.store import campaigns as campaign_store
from dialer.engine.store import instances as instance_store
from dialer.engine.transactions import Transactions

log = logging.getLogger("dialer.engine")

#: A heartbeat older than this: the engine is dead (the one threshold `dialer status` uses too).
INSTANCE_DEAD_SECS = ENGINE_LIVE_SECS
#: A `created` attempt of this engine that it no longer tracks is recovered after this long.
ORPHAN_SECS = 5.0


def _process_space() -> str:
    """Where process ids mean what they mean here: the host name and the PID namespace (two
    containers sharing a host name, e.g. with host networking, have different namespaces)."""
    host = socket.gethostname()
    try:
        namespace = os.readlink("/proc/self/ns/pid")  # e.g. "pid:[4026531836]"
    except OSError:
        return host[:200]
    return f"{host[:150]} {namespace}"[:200]


#: Stored as `engine_instances.hostname`.
PROCESS_SPACE = _process_space()


def process_gone(process_space: str, pid: int) -> bool:
    """True when an engine instance ran in this process space in a process that no longer
    exists, or under our own pid (then it was a previous process: ids are unique while alive)."""
    if process_space != PROCESS_SPACE:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # exists, owned by someone else
        return False
    return False


class Instances:
    """This engine's row and the others'."""

    def __init__(self, tx: Transactions, instance_id: str, cps: float, max_concurrent: int,
                 on_limits: Callable[[instance_store.AccountLimits], None]) -> None:
        self.tx = tx
        self.instance_id = instance_id
        self.cps = cps
        self.max_concurrent = max_concurrent
        #: Told the account limits the live engines agree on after each heartbeat.
        self._on_limits = on_limits

    async def heartbeat(self) -> None:
        now = utcnow()
        limits = await self.tx.run(lambda s: instance_store.beat(
            s, self.instance_id, PROCESS_SPACE, os.getpid(), now,
            timedelta(seconds=INSTANCE_DEAD_SECS), self.cps, self.max_concurrent))
        self._on_limits(limits)

    async def live(self, now: datetime) -> set[str]:
        """Instances with a recent heartbeat, except those on this host whose process is gone
        (killed and restarted within INSTANCE_DEAD_SECS): their rows are removed at once, so
        neither their work nor their share of the dial rate waits for the heartbeat to expire."""
        async def _q(s: AsyncSession) -> set[str]:
            rows = await instance_store.recent(s, now - timedelta(seconds=INSTANCE_DEAD_SECS))
            gone = [i for i, host, pid in rows
                    if i != self.instance_id and process_gone(host, pid)]
            if gone:
                await instance_store.remove(s, gone)
                log.info("engine instance(s) %s on this host are gone", ", ".join(gone))
            return {i for i, _, _ in rows if i not in gone}
        return await self.tx.run(_q)

    async def remove_self(self) -> None:
        await self.tx.run(lambda s: instance_store.remove(s, [self.instance_id]))


class Recovery:
    def __init__(self, *, tx: Transactions, instances: Instances, queue: DialQueue,
                 timing: Timing, refresh_campaigns: Callable[[], Awaitable[object]],
                 on_actions: Callable[[list[PendingAction]], None], clock: Clock) -> None:
        self.tx = tx
        self.clock = clock
        self.instances = instances
        self.queue = queue
        self.timing = timing
        self._refresh_campaigns = refresh_campaigns
        self._on_actions = on_actions

    async def recover(self) -> None:
        """Attempts in `created` whose dial result nobody will record: claimed by an engine
        that is gone, or by this one but no longer tracked here (the claim committed but its
        answer was lost to a database outage). Dials younger than the command_id window are
        re-sent with the same command_id (Telnyx ignores the repeat if the first one was
        placed); older ones wait for their webhooks or reconciliation."""
        now = self.clock.now()
        live = await self.instances.live(utcnow())  # heartbeats are wall-clock times
        tracked = set(self.queue.tracked)
        me = self.instances.instance_id
        orphan_before = now - timedelta(seconds=ORPHAN_SECS * self.clock.scale)

        async def _scan(s: AsyncSession) -> list[DialJob]:
            jobs: list[DialJob] = []
            for a in await call_store.created_unreconciled(s):
                if a.claimed_by == me:
                    if (a.id in tracked or a.id in self.queue.tracked
                            or a.created_at > orphan_before):
                        continue
                elif a.claimed_by in live:
                    continue
                age = self.clock.to_wall((now - a.created_at).total_seconds())
                a.claimed_by = me
                if age < RESEND_WINDOW_SECS:
                    jobs.append(DialJob(a.id, a.campaign_id, a.contact_id, a.attempt_no,
                                        a.phone_e164, a.command_id, a.client_state, resend=True,
                                        created_at=a.created_at))
                else:
                    a.reconcile_after = now + self.timing.wait(self.timing.lost_dial_secs)
            return jobs

        jobs = await self.tx.run_retrying("recovery", _scan)
        if jobs:
            log.info("recovery: re-sending %d dials with their original command_id", len(jobs))
            await self._refresh_campaigns()
            self.queue.push(jobs, front=True)

    async def resume_flows(self) -> None:
        """Actions are sent after the transaction that decided them commits: a crash in between
        loses them (a message never played, a call never hung up). At start, the actions of
        every live call's current flow step are sent again with their original command_id;
        Telnyx ignores those that were already sent."""
        async def _q(s: AsyncSession) -> list[PendingAction]:
            rows = await call_store.live_in_flow(s)
            campaigns = await campaign_store.by_ids(s, {a.campaign_id for a in rows})
            actions = []
            for a in rows:
                assert a.call_control_id is not None
                settings = settings_of(campaigns[a.campaign_id])
                for act in flow.entry_actions(a.flow_state, settings):
                    actions.append(pending_action(a, act, settings))
            return await script_events.render_actions(s, actions)  # templates per contact
        actions = await self.tx.run_retrying("resuming call flows", _q)
        if actions:
            log.info("recovery: re-sending the actions of %d live calls", len(actions))
            self._on_actions(actions)
