"""kill -9 a persistence process three times under a load of 2,000 jobs."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import asyncpg
import pytest

from tests.faults.faultkit import Cluster, drive, partitions_of, reconcile, wait_ready
from tests.waits import eventually


class Busy:
    """Whether a process holds partitions that moved since the last look."""

    def __init__(self, c: Cluster, pool: asyncpg.Pool[Any], name: str) -> None:
        self._c, self._pool, self._name = c, pool, name
        self._seen: dict[int, int] = {}

    async def __call__(self) -> bool:
        mine = (await partitions_of(self._c)).get(self._name, set())
        if not mine:
            return False
        rows = await self._pool.fetch(
            "SELECT partition, seq FROM watermarks WHERE partition = ANY($1)", list(mine)
        )
        now = {r["partition"]: r["seq"] for r in rows}
        seen, self._seen = self._seen, now
        return bool(seen) and any(now.get(p, 0) > seen.get(p, 0) for p in mine)


@pytest.mark.timeout(600)
async def test_kill_persistence_three_times(cluster: Cluster, pool: asyncpg.Pool[Any]) -> None:
    load_task = asyncio.create_task(
        drive(cluster, 2000, concurrency=24, name="kill -9 persistence x3")
    )
    for _ in range(3):
        # Kill it while it holds partitions that are moving: mid-work, not idle.
        await eventually(Busy(cluster, pool, "persistence-1"), within=120, what="busy")
        assert cluster.signal("persistence-1", signal.SIGKILL) == -signal.SIGKILL
        cluster.start("persistence-1")
    load = await load_task
    assert len(load.accepted) == 2000, (load.refused, load.errors)
    statuses = await reconcile(pool, load)
    assert sorted(set(statuses.values())) == ["succeeded"]
    assert cluster.alive("persistence-1")
    await wait_ready(cluster)
    print(f"\nkill-9 x3: sent 2000, accepted {len(load.accepted)}, completed {len(statuses)}")
