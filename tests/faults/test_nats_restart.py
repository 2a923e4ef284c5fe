"""Stop and restart nats-server under load: 503 while it is down, nothing lost after."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg
import httpx
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

from gateway.auth import issue_token


async def test_nats_restart_under_load(cluster: Cluster, pool: asyncpg.Pool[Any]) -> None:
    load_task = asyncio.create_task(drive(cluster, 400, concurrency=8))
    await eventually(lambda: jobs_applied(pool, 50), what="load under way")
    cluster.stack.stop_one("nats")
    headers = {"Authorization": f"Bearer {issue_token(cluster.settings, 'probe')}"}
    body = {"filename": "p.txt", "content_type": "text/plain", "size": 1}
    async with httpx.AsyncClient(base_url=cluster.url, timeout=10) as client:
        # While it is down a write is refused with 503 and Retry-After, never a 2xx.
        deadline = time.monotonic() + 15
        while True:
            r = await client.post("/v1/uploads", json=body, headers=headers)
            assert r.status_code in (201, 503), r.text
            if r.status_code == 503:
                break
            assert time.monotonic() < deadline, "writes kept succeeding without NATS"
            await asyncio.sleep(0.05)
        assert r.headers["retry-after"]
        assert r.headers["content-type"].startswith("application/problem+json")
        cluster.stack.restart("nats")
        await wait_ready(cluster)
    load = await load_task
    assert load.refused.get(503, 0) + load.errors > 0 or len(load.accepted) == 400
    statuses = await reconcile(pool, load)
    assert sorted(set(statuses.values())) == ["succeeded"]
    # Every process rode it out: none exited.
    assert all(cluster.alive(name) for name in cluster.procs)
