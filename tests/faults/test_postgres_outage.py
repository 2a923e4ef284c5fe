"""Stop Postgres for 5 s under load: persistence waits and retries; nothing lost or doubled."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from tests.faults.faultkit import Cluster, drive, jobs_applied, reconcile
from tests.waits import eventually


async def test_postgres_outage_under_load(cluster: Cluster, pool: asyncpg.Pool[Any]) -> None:
    load_task = asyncio.create_task(drive(cluster, 400, concurrency=8, name="postgres outage 5 s"))
    await eventually(lambda: jobs_applied(pool, 50), what="load under way")
    cluster.stack.stop_one("postgres")
    # The outage itself: its length is the fault being injected, not a wait for a condition.
    await asyncio.sleep(5)
    cluster.stack.restart("postgres")
    load = await load_task
    # Writes go to NATS, not Postgres: the outage refused none of them.
    assert len(load.accepted) == 400, (load.refused, load.errors)
    statuses = await reconcile(pool, load)
    assert sorted(set(statuses.values())) == ["succeeded"]
    assert all(cluster.alive(name) for name in cluster.procs)
