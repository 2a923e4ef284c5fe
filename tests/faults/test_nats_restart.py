"""Stop and restart nats-server under load: 503 while it is down, nothing lost after."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

import asyncpg
import httpx
import pytest
import websockets
from conftest import connect_as

from actors.publisher import Publisher
from gateway.auth import issue_token
from tests.events import uploaded_event
from tests.faults.faultkit import Cluster, drive, jobs_applied, reconcile, wait_ready
from tests.waits import eventually


async def open_feed(cluster: Cluster, owner: str) -> websockets.ClientConnection:
    """`owner`'s WS /v1/events, once it has read the stream: from just before an event
    of `owner`'s, published here, which it sends first."""
    nc = await connect_as(cluster.settings, "ops")
    try:
        ack = await Publisher(nc.jetstream()).publish(uploaded_event(owner))
    finally:
        await nc.close()
    token = issue_token(cluster.settings, owner)
    url = cluster.url.replace("http://", "ws://") + f"/v1/events?token={token}&after={ack.seq - 1}"
    feed = await websockets.connect(url)
    first = json.loads(await asyncio.wait_for(feed.recv(), 30))
    assert first["seq"] == ack.seq
    return feed


@pytest.mark.timeout(600)
async def test_nats_restart_under_load(cluster: Cluster, pool: asyncpg.Pool[Any]) -> None:
    stop = asyncio.Event()
    # More than it can finish: the load runs before, during and after the outage.
    load_task = asyncio.create_task(
        drive(cluster, 100_000, concurrency=8, stop=stop, name="nats restart")
    )
    await eventually(lambda: jobs_applied(pool, 100), what="load under way")
    # An owner's feed is open across the outage: relays sent meanwhile are lost, so
    # it must close, naming where to resume, rather than go on past the gap. It is
    # set up once it has sent the owner's one event, read from the stream.
    feed = await open_feed(cluster, "probe")
    cluster.stack.stop_one("nats")
    down_since = time.monotonic()
    probes: list[int] = []
    headers = {"Authorization": f"Bearer {issue_token(cluster.settings, 'probe')}"}
    body = {"filename": "p.txt", "content_type": "text/plain", "size": 1}
    async with httpx.AsyncClient(base_url=cluster.url, timeout=15) as client:
        # Down for longer than a publish waits for its ack (5 s), so requests caught
        # in flight answer too; meanwhile every new write must be refused with 503.
        while time.monotonic() - down_since < 6 or probes[-3:] != [503] * 3:
            assert time.monotonic() - down_since < 60, probes
            r = await client.post("/v1/uploads", json=body, headers=headers)
            assert r.status_code in (201, 503), r.text
            if r.status_code == 503:
                assert r.headers["retry-after"]
                assert r.headers["content-type"].startswith("application/problem+json")
            probes.append(r.status_code)
            await asyncio.sleep(0.1)
    cluster.stack.restart("nats")
    await wait_ready(cluster, timeout=120)
    with contextlib.suppress(websockets.ConnectionClosed):
        async with asyncio.timeout(30):
            async for _ in feed:
                pass
    assert feed.close_code == 1012, feed.close_reason
    assert "resume with after=" in (feed.close_reason or "")
    after = await pool.fetchval("SELECT count(*) FROM job_events")
    await eventually(lambda: jobs_applied(pool, after + 200), what="load flowing again")
    stop.set()
    load = await load_task
    # While it was down writes were refused with 503 (never 500); `drive` checked
    # every answer it got was 201/202 or 503.
    # Once refused, refused for as long as NATS was down: no write slipped through.
    assert set(probes[probes.index(503) :]) == {503}, probes
    print(
        f"\n[nats restart] probes while down: {probes.count(503)} x 503, {probes.count(201)} x 201"
    )
    statuses = await reconcile(pool, load)
    assert sorted(set(statuses.values())) == ["succeeded"]
    # Every process rode it out: none exited.
    assert all(cluster.alive(name) for name in cluster.procs)
