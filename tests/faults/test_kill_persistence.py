"""kill -9 a persistence process three times under a load of 2,000 jobs."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import asyncpg
from faultkit import (
    Cluster,
    cluster,
    drive,
    eventually,
    fault_stack,
    jobs_applied,
    pool,
    reconcile,
    wait_ready,
)


async def test_kill_persistence_three_times(cluster: Cluster, pool: asyncpg.Pool[Any]) -> None:
    load_task = asyncio.create_task(drive(cluster, 2000, concurrency=24))
    for _ in range(3):
        # Let it apply something since its (re)start, then kill it mid-work.
        seen = await pool.fetchval("SELECT count(*) FROM job_events")
        await eventually(lambda s=seen: jobs_applied(pool, s + 100), what="progress")
        assert cluster.signal("persistence-1", signal.SIGKILL) == -signal.SIGKILL
        cluster.start("persistence-1")
    load = await load_task
    assert len(load.accepted) == 2000, (load.refused, load.errors)
    statuses = await reconcile(pool, load)
    assert sorted(set(statuses.values())) == ["succeeded"]
    assert cluster.alive("persistence-1")
    await wait_ready(cluster)
