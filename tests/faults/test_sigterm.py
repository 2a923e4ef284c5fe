"""SIGTERM actors mid-work: they drain and exit 0; nothing half-applied or lost."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import asyncpg

from tests.faults.faultkit import Cluster, drive, jobs_applied, reconcile
from tests.waits import eventually


async def test_sigterm_mid_batch_drains(cluster: Cluster, pool: asyncpg.Pool[Any]) -> None:
    load_task = asyncio.create_task(drive(cluster, 600, concurrency=16, name="sigterm mid-work"))
    for name in ("persistence-1", "processing-1", "persistence-2"):
        seen = await pool.fetchval("SELECT count(*) FROM job_events")
        await eventually(lambda s=seen: jobs_applied(pool, s + 50), what="progress")
        assert cluster.signal(name, signal.SIGTERM) == 0, cluster.log(name)[-3000:]
        assert "actor stopped" in cluster.log(name)
        cluster.start(name)
    load = await load_task
    assert len(load.accepted) == 600, (load.refused, load.errors)
    statuses = await reconcile(pool, load)
    assert sorted(set(statuses.values())) == ["succeeded"]
