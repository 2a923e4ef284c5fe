"""A processing step that runs longer than the ack wait is done once, not twice."""

from __future__ import annotations

import json
import random
import signal
import uuid
from typing import Any

import asyncpg
import httpx
import pytest
from conftest import connect_as

from gateway.auth import issue_token
from ops.provision import consumer
from schemas import subjects
from tests.faults.faultkit import Cluster, wait_ready
from tests.waits import eventually

ACK_WAIT = 0.5
# Enough rows that profiling takes a few times ACK_WAIT even on a fast machine: 100,000
# rows took 0.88 s on a 2-core EPYC VM (2026-11), too close to the 1 s this test had.
ROWS = 150_000


def big_csv(rows: int) -> bytes:
    rnd = random.Random(7)
    lines = [",".join(f"c{i}" for i in range(12))]
    for _ in range(rows):
        lines.append(
            ",".join(
                [f"{rnd.random():.6f}", str(rnd.randint(0, 10**6)), f"n{rnd.randint(0, 50000)}"] * 4
            )
        )
    return ("\n".join(lines) + "\n").encode()


@pytest.mark.timeout(300)
async def test_work_longer_than_ack_wait_is_done_once(
    cluster: Cluster, pool: asyncpg.Pool[Any]
) -> None:
    nc = await connect_as(cluster.settings, "ops")
    js = nc.jetstream()
    try:
        short = cluster.settings.replace(ack_wait_seconds=ACK_WAIT)
        await js.add_consumer(subjects.JOBS_STREAM, consumer(subjects.PROCESSING_CONSUMER, short))
        # Restart the processors so they pace their progress signals on the new ack wait.
        for name in ("processing-1", "processing-2"):
            assert cluster.signal(name, signal.SIGTERM) == 0
            cluster.start(name)
        await wait_ready(cluster)

        content = big_csv(ROWS)
        owner = f"long-{uuid.uuid4().hex[:8]}"
        headers = {"Authorization": f"Bearer {issue_token(cluster.settings, owner)}"}
        async with httpx.AsyncClient(base_url=cluster.url, timeout=30) as api:
            body = {"filename": "big.csv", "content_type": "text/csv", "size": len(content)}
            ticket = (await api.post("/v1/uploads", json=body, headers=headers)).json()
            assert (
                await api.put(ticket["url"], content=content, headers=ticket["headers"])
            ).status_code == 200
            r = await api.post(f"/v1/uploads/{ticket['upload_id']}/complete", headers=headers)
            assert r.status_code == 202
            job_id = ticket["job_id"]

            async def done() -> bool:
                job = (await api.get(f"/v1/jobs/{job_id}", headers=headers)).json()
                return bool(job["status"] in ("succeeded", "failed", "rejected"))

            await eventually(done, within=120, what="long job done")
            job = (await api.get(f"/v1/jobs/{job_id}", headers=headers)).json()
        assert job["status"] == "succeeded", job
        assert job["result"]["rows"] == ROWS

        info = await js.consumer_info(subjects.JOBS_STREAM, subjects.PROCESSING_CONSUMER)
        assert info.num_redelivered == 0
    finally:
        await nc.close()

    handled = [
        json.loads(line)
        for name in ("processing-1", "processing-2")
        for line in cluster.log(name).splitlines()
        if line.startswith("{") and job_id in line and '"handled"' in line
    ]
    assert len(handled) == 1, handled
    assert handled[0]["delivered"] == 1
    assert handled[0]["ms"] > ACK_WAIT * 1000  # it really outlasted the ack wait
    processed = await pool.fetchval(
        "SELECT count(*) FROM job_events WHERE job_id = $1 AND type = 'processed'",
        uuid.UUID(job_id),
    )
    assert processed == 1
    print(f"\nlong work: {handled[0]['ms']:.0f} ms with ack wait {ACK_WAIT:.0f} s, handled once")
