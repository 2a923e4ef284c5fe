"""A message whose handler always fails: dead-lettered after max_deliver, the rest flows."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import msgspec
from conftest import connect_as

from actors.publisher import Publisher
from schemas import subjects
from schemas.events import Uploaded, new_event
from tests.faults.faultkit import Cluster, drive, reconcile
from tests.letters import stored_letter
from tests.waits import eventually, wait_for_value


async def test_poison_message_is_dead_lettered(cluster: Cluster, pool: asyncpg.Pool[Any]) -> None:
    nc = await connect_as(cluster.settings, "ops")
    js = nc.jetstream()
    job_id = uuid.uuid4()
    letter = subjects.dead_letter("upload", job_id)
    try:
        # An empty object key: the S3 client refuses it before sending, on every try.
        poison = new_event(
            Uploaded(
                upload_id=uuid.uuid4(), filename="p.csv", content_type="text/csv", size=1, key=""
            ),
            job_id=job_id,
            owner="poison-owner",
            source="test",
            correlation_id="poison",
        )
        await Publisher(js).publish(poison)
        load = await drive(cluster, 150, concurrency=8, name="poison message")
        statuses = await reconcile(pool, load)
        assert sorted(set(statuses.values())) == ["succeeded"]

        dead = await wait_for_value(lambda: stored_letter(js, letter), what="poison dead-lettered")
    finally:
        await nc.close()
    headers = dead.headers or {}
    assert headers["Conveyor-Delivered"] == str(cluster.settings.max_deliver)
    assert "Key" in headers["Conveyor-Error"]
    assert msgspec.json.decode(dead.data or b"")["id"] == str(poison.id)

    async def failed() -> bool:
        status = await pool.fetchval("SELECT status FROM jobs WHERE job_id = $1", job_id)
        return bool(status == "failed")

    await eventually(failed, what="poisoned job failed")
    error = await pool.fetchval("SELECT error FROM jobs WHERE job_id = $1", job_id)
    assert f"gave up after {cluster.settings.max_deliver} tries" in error
