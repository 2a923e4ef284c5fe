"""The persistence actor against the real Postgres: idempotent, watermark in the same
transaction. Each test uses its own watermark key and a private range of sequences."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import msgspec
import pytest

from actors.persistence import PersistenceActor
from actors.runtime import Delivery
from ops.connections import postgres_pool
from schemas.events import Envelope, Processed, Uploaded, Verified, Verifying, follow_up, new_event
from schemas.results import FileResult
from schemas.settings import Settings


@pytest.fixture
async def pool(provisioned: Settings) -> AsyncIterator[asyncpg.Pool[Any]]:
    async with postgres_pool(provisioned, size=2) as p:
        yield p


def chain(owner: str) -> list[Envelope]:
    job_id = uuid.uuid4()
    uploaded = new_event(
        Uploaded(upload_id=uuid.uuid4(), filename="f.bin", content_type="a/b", size=3, key="k"),
        job_id=job_id,
        owner=owner,
        source="test",
        correlation_id="req",
    )
    verified = follow_up(
        uploaded,
        Verified(key="k", filename="f.bin", size=3, sha256="ab" * 32, mime="a/b"),
        source="test",
    )
    processed = follow_up(
        verified,
        Processed(
            processor="generic",
            result_key="r",
            result=FileResult(size=3, sha256="ab" * 32, mime="a/b"),
        ),
        source="test",
    )
    return [uploaded, follow_up(uploaded, Verifying(), source="test"), verified, processed]


def delivery(event: Envelope, seq: int) -> Delivery:
    return Delivery(
        subject=f"jobs.{event.job_id}.{event.type}",
        stream_seq=seq,
        num_delivered=1,
        data=msgspec.json.encode(event),
    )


async def test_apply_is_idempotent_and_keeps_the_watermark(
    pool: asyncpg.Pool[Any], owner: str
) -> None:
    stream = f"test-{uuid.uuid4().hex}"
    actor = PersistenceActor(pool, stream=stream)
    base = random.randrange(10**12, 10**15)
    events = chain(owner)
    for offset, event in enumerate(events):
        await actor.handle(event, delivery(event, base + offset))
    # Redelivery of every message (a crash before the acks) and a duplicate
    # publish of the last event under a new sequence: nothing changes twice.
    for offset, event in enumerate(events):
        await actor.handle(event, delivery(event, base + offset))
    await actor.handle(events[-1], delivery(events[-1], base + 100))

    job_id = events[0].job_id
    rows = await pool.fetch(
        "SELECT seq, type FROM job_events WHERE job_id = $1 ORDER BY seq", job_id
    )
    assert [r["type"] for r in rows] == ["uploaded", "verifying", "verified", "processed"]
    job = await pool.fetchrow(
        "SELECT status, sha256, last_seq, result FROM jobs WHERE job_id = $1", job_id
    )
    assert job is not None
    assert job["status"] == "succeeded"
    assert job["sha256"] == "ab" * 32
    assert job["last_seq"] == base + 3
    assert msgspec.json.decode(job["result"]) == {
        "kind": "file",
        "size": 3,
        "sha256": "ab" * 32,
        "mime": "a/b",
    }
    mark = await pool.fetchval("SELECT seq FROM watermarks WHERE stream = $1", stream)
    assert mark == base + 100


async def test_terminal_status_is_not_overwritten(pool: asyncpg.Pool[Any], owner: str) -> None:
    actor = PersistenceActor(pool, stream=f"test-{uuid.uuid4().hex}")
    base = random.randrange(10**12, 10**15)
    uploaded, verifying, verified, processed = chain(owner)
    for offset, event in enumerate((uploaded, verified, processed)):
        await actor.handle(event, delivery(event, base + offset))
    # A late `verifying` (another delivery order) must not move a finished job back.
    await actor.handle(verifying, delivery(verifying, base + 10))
    status = await pool.fetchval("SELECT status FROM jobs WHERE job_id = $1", uploaded.job_id)
    assert status == "succeeded"


async def test_failed_transaction_leaves_nothing(pool: asyncpg.Pool[Any], owner: str) -> None:
    stream = f"test-{uuid.uuid4().hex}"
    actor = PersistenceActor(pool, stream=stream)
    seq = random.randrange(10**12, 10**15)
    event = chain(owner)[0]

    async def crash_before_commit() -> None:
        async with pool.acquire() as conn, conn.transaction():
            await actor.apply(conn, event, seq, msgspec.json.encode(event))
            raise RuntimeError("crash before commit")

    with pytest.raises(RuntimeError):
        await crash_before_commit()
    assert await pool.fetchval("SELECT count(*) FROM job_events WHERE seq = $1", seq) == 0
    assert await pool.fetchval("SELECT count(*) FROM jobs WHERE job_id = $1", event.job_id) == 0
    assert await pool.fetchval("SELECT seq FROM watermarks WHERE stream = $1", stream) is None
