"""`project_all` gives the rows `project_one` gives, event by event, against the real
Postgres. Each case uses jobs of its own (fresh ids per way of projecting)."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import msgspec
import pytest

from actors.projection import project_all, project_one
from ops.connections import postgres_pool
from schemas.events import (
    Envelope,
    Failed,
    Processed,
    Rejected,
    Uploaded,
    Verified,
    Verifying,
    follow_up,
)
from schemas.results import FileResult
from schemas.settings import Settings
from tests.events import uploaded_event

# Compared between the two ways; job_id and upload_id differ by construction.
COLUMNS = (
    "owner, filename, content_type, size, object_key, sha256, mime, status, result::text,"
    " result_key, error, created_at, updated_at, last_seq"
)


@pytest.fixture
async def pool(provisioned: Settings) -> AsyncIterator[asyncpg.Pool[Any]]:
    async with postgres_pool(provisioned, size=2) as p:
        yield p


def story(owner: str, ending: str) -> list[Envelope]:
    """One job's events in stream order, ending as `ending` says."""
    uploaded = uploaded_event(owner, filename="t.csv")
    verifying = follow_up(uploaded, Verifying(), source="test")
    if ending == "rejected":
        return [uploaded, verifying, follow_up(verifying, Rejected(reason="size"), source="t")]
    verified = follow_up(
        verifying,
        Verified(key="k", filename="t.csv", size=3, sha256="cd" * 32, mime="text/csv"),
        source="test",
    )
    if ending == "failed":
        failed = Failed(reason="bad file", stage="processing")
        return [uploaded, verifying, verified, follow_up(verified, failed, source="test")]
    result = FileResult(size=3, sha256="cd" * 32, mime="text/csv")
    processed = follow_up(
        verified, Processed(processor="generic", result_key="r", result=result), source="test"
    )
    if ending == "uploaded twice":
        # A second `uploaded` (published again past the dedupe window) changes nothing.
        return [uploaded, verifying, uploaded, verified, processed]
    if ending == "no upload":
        # The row's `uploaded` is not among these events: the rest find no row.
        return [verifying, verified]
    return [uploaded, verifying, verified, processed]


ENDINGS = ("succeeded", "rejected", "failed", "uploaded twice", "no upload")


def interleaved(rng: random.Random, jobs: list[list[Envelope]]) -> list[Envelope]:
    """The jobs' events merged at random, each job's own order kept (as a stream holds them)."""
    queues = [list(job) for job in jobs]
    merged: list[Envelope] = []
    while queues:
        queue = rng.choice(queues)
        merged.append(queue.pop(0))
        if not queue:
            queues.remove(queue)
    return merged


def renamed(events: list[Envelope]) -> list[Envelope]:
    """The same events for other jobs: fresh job and upload ids, one per original."""
    jobs: dict[uuid.UUID, uuid.UUID] = {}
    uploads: dict[uuid.UUID, uuid.UUID] = {}
    out = []
    for event in events:
        job_id = jobs.setdefault(event.job_id, uuid.uuid4())
        data = event.data
        if isinstance(data, Uploaded):
            data = msgspec.structs.replace(
                data, upload_id=uploads.setdefault(data.upload_id, uuid.uuid4())
            )
        out.append(msgspec.structs.replace(event, job_id=job_id, data=data))
    return out


async def rows(pool: asyncpg.Pool[Any], events: list[Envelope]) -> list[dict[str, Any] | None]:
    """The jobs' rows, all but their ids, in the order the jobs first appear in `events`
    (None when absent)."""
    order = list(dict.fromkeys(e.job_id for e in events))
    found = {
        r["job_id"]: {k: v for k, v in r.items() if k != "job_id"}
        for r in await pool.fetch(
            f"SELECT job_id, {COLUMNS} FROM jobs WHERE job_id = ANY($1::uuid[])", order
        )
    }
    return [found.get(job_id) for job_id in order]


def deliveries(rng: random.Random, count: int) -> list[range]:
    """Positions 0..count-1 cut at random points, with an earlier stretch delivered again
    now and then (a reader replaying beside live work)."""
    out: list[range] = []
    start = 0
    while start < count:
        end = min(count, start + rng.randint(1, 6))
        out.append(range(start, end))
        if rng.random() < 0.3:
            again = rng.randrange(end)
            out.append(range(again, min(end, again + rng.randint(1, 4))))
        start = end
    return out


@pytest.mark.parametrize("seed", range(6))
async def test_a_batch_folded_set_wise_equals_one_event_at_a_time(
    pool: asyncpg.Pool[Any], owner: str, seed: int
) -> None:
    rng = random.Random(seed)
    encoder = msgspec.json.Encoder()
    jobs = [story(owner, ENDINGS[i % len(ENDINGS)]) for i in range(12)]
    events = interleaved(rng, jobs)
    base = rng.randrange(10**12, 10**15)
    one, folded = events, renamed(events)
    # The same deliveries, in the same order, for both ways.
    for cut in deliveries(rng, len(events)):
        async with pool.acquire() as conn, conn.transaction():
            for i in cut:
                await project_one(conn, one[i], base + i, encoder)
        async with pool.acquire() as conn, conn.transaction():
            await project_all(conn, [(base + i, folded[i]) for i in cut], encoder, copy=False)

    expected = await rows(pool, one)
    assert await rows(pool, folded) == expected
    # The stories end as told: a check that the rows compared are not both empty.
    statuses = [row["status"] if row else None for row in expected]
    assert set(statuses) == {"succeeded", "rejected", "failed", None}


async def test_copy_inserts_new_jobs_with_their_later_events_folded_in(
    pool: asyncpg.Pool[Any], owner: str
) -> None:
    encoder = msgspec.json.Encoder()
    events = interleaved(random.Random(99), [story(owner, e) for e in ENDINGS if e != "no upload"])
    one, copied = events, renamed(events)
    async with pool.acquire() as conn, conn.transaction():
        for seq, event in enumerate(one, start=1):
            await project_one(conn, event, seq, encoder)
        await project_all(conn, list(enumerate(copied, start=1)), encoder, copy=True)
    expected = await rows(pool, one)
    assert await rows(pool, copied) == expected
    assert sorted(row["status"] for row in expected if row) == [
        "failed",
        "rejected",
        "succeeded",
        "succeeded",
    ]
