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

from actors.persistence import Fenced, PersistenceActor, Stored
from ops.connections import postgres_pool
from schemas.events import Envelope, Processed, Verified, Verifying, follow_up
from schemas.results import FileResult
from schemas.settings import Settings
from tests.events import uploaded_event


@pytest.fixture
async def pool(provisioned: Settings) -> AsyncIterator[asyncpg.Pool[Any]]:
    async with postgres_pool(provisioned, size=2) as p:
        yield p


def chain(owner: str, *, encoding: str | None = None) -> list[Envelope]:
    uploaded = uploaded_event(owner, filename="f.bin", content_type="a/b")
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
            result=FileResult(size=3, sha256="ab" * 32, mime="a/b", encoding=encoding),
        ),
        source="test",
    )
    return [uploaded, follow_up(uploaded, Verifying(), source="test"), verified, processed]


PARTITION = 3


def unstorable(owner: str) -> Envelope:
    """An event Postgres can not store: a NUL character bound for a text column."""
    return uploaded_event(owner, filename="a\x00b", content_type="a/b", size=1)


def stored(event: Envelope, seq: int) -> Stored:
    return Stored(
        seq=seq,
        subject=f"jobs.{event.job_id}.{event.type}.{PARTITION}",
        data=msgspec.json.encode(event),
    )


async def envelopes(pool: asyncpg.Pool[Any], job_id: uuid.UUID) -> list[bytes]:
    """The job's stored envelopes, in stream order, as bytes to compare with the stream's."""
    rows = await pool.fetch(
        "SELECT envelope FROM job_events WHERE job_id = $1 ORDER BY seq", job_id
    )
    return [r["envelope"].encode() for r in rows]


async def no_dead_letters(message: Stored, reason: str) -> None:
    raise AssertionError(f"unexpected dead letter: {reason}")


async def test_apply_is_idempotent_and_keeps_the_watermark(
    pool: asyncpg.Pool[Any], owner: str
) -> None:
    stream = f"test-{uuid.uuid4().hex}"
    actor = PersistenceActor(pool, no_dead_letters, stream=stream)
    base = random.randrange(10**12, 10**15)
    events = chain(owner)
    batch = [stored(event, base + offset) for offset, event in enumerate(events)]
    first = await actor.apply_batch(batch, epoch=await actor.epoch())
    assert (first.applied, first.skipped) == (4, 0)
    # The same batch again (a reader restarted from an older position) and a
    # duplicate publish of the last event under a new sequence: nothing changes twice.
    again = await actor.apply_batch(
        [*batch, stored(events[-1], base + 100)], epoch=await actor.epoch()
    )
    assert (again.applied, again.skipped) == (0, 5)

    job_id = events[0].job_id
    rows = await pool.fetch(
        "SELECT seq, type, envelope FROM job_events WHERE job_id = $1 ORDER BY seq", job_id
    )
    assert [r["type"] for r in rows] == ["uploaded", "verifying", "verified", "processed"]
    # Each envelope kept as the stream holds it, byte for byte.
    assert [r["envelope"].encode() for r in rows] == [m.data for m in batch]
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
        "encoding": None,
        "lines": None,
    }
    assert await actor.watermark(PARTITION) == base + 100
    assert await actor.watermark(PARTITION + 1) == 0


async def test_a_nul_in_the_envelope_alone_is_stored_as_sent(
    pool: asyncpg.Pool[Any], owner: str
) -> None:
    refused: list[int] = []

    async def collect(message: Stored, reason: str) -> None:
        refused.append(message.seq)

    actor = PersistenceActor(pool, collect, stream=f"test-{uuid.uuid4().hex}")
    base = random.randrange(10**12, 10**15)
    events = chain(owner, encoding="a\x00b")
    # The unstorable event sends the batch down the savepoint-per-event path.
    batch = [stored(e, base + i) for i, e in enumerate([*events, unstorable(owner)])]
    counts = await actor.apply_batch(batch, epoch=await actor.epoch())
    assert (counts.applied, counts.dead) == (4, 1)
    assert refused == [base + 4]
    assert await envelopes(pool, events[0].job_id) == [m.data for m in batch[:4]]
    result = await pool.fetchval("SELECT result FROM jobs WHERE job_id = $1", events[0].job_id)
    assert msgspec.json.decode(result)["encoding"] == "a\x00b"


async def test_a_partial_replay_stores_envelopes_as_sent(
    pool: asyncpg.Pool[Any], owner: str
) -> None:
    actor = PersistenceActor(pool, no_dead_letters, stream=f"test-{uuid.uuid4().hex}")
    base = random.randrange(10**12, 10**15)
    events = chain(owner)
    # Without watermarks: the INSERT path, not COPY.
    batch = [stored(e, base + i) for i, e in enumerate(events)]
    counts = await actor.apply_batch(batch, epoch=await actor.epoch(), watermarks=False)
    assert counts.applied == 4
    assert await envelopes(pool, events[0].job_id) == [m.data for m in batch]


async def test_an_older_event_never_moves_a_job_back(pool: asyncpg.Pool[Any], owner: str) -> None:
    actor = PersistenceActor(pool, no_dead_letters, stream=f"test-{uuid.uuid4().hex}")
    base = random.randrange(10**12, 10**15)
    uploaded, verifying, verified, processed = chain(owner)
    await actor.apply_batch(
        [stored(e, base + 5 + i) for i, e in enumerate((uploaded, verified, processed))],
        epoch=await actor.epoch(),
    )
    # A `verifying` with an older sequence applied late (a replay beside live work).
    await actor.apply_batch([stored(verifying, base + 1)], epoch=await actor.epoch())
    row = await pool.fetchrow(
        "SELECT status, last_seq FROM jobs WHERE job_id = $1", uploaded.job_id
    )
    assert row is not None
    assert (row["status"], row["last_seq"]) == ("succeeded", base + 7)


async def test_refused_event_is_dead_lettered_and_the_rest_applied(
    pool: asyncpg.Pool[Any], owner: str
) -> None:
    refused: list[tuple[int, str]] = []

    async def collect(message: Stored, reason: str) -> None:
        refused.append((message.seq, reason))

    stream = f"test-{uuid.uuid4().hex}"
    actor = PersistenceActor(pool, collect, stream=stream)
    base = random.randrange(10**12, 10**15)
    uploaded, verifying, _, _ = chain(owner)
    garbage = Stored(seq=base + 1, subject=f"jobs.x.verifying.{PARTITION}", data=b"{not json")
    nul = unstorable(owner)
    batch = [stored(uploaded, base), garbage, stored(nul, base + 2), stored(verifying, base + 3)]
    counts = await actor.apply_batch(batch, epoch=await actor.epoch())
    assert (counts.applied, counts.dead) == (2, 2)
    assert [seq for seq, _ in refused] == [base + 1, base + 2]
    status = await pool.fetchval("SELECT status FROM jobs WHERE job_id = $1", uploaded.job_id)
    assert status == "verifying"
    assert await actor.watermark(PARTITION) == base + 3


async def test_failed_transaction_leaves_nothing(pool: asyncpg.Pool[Any], owner: str) -> None:
    """A batch is all or nothing: events, projections and watermark roll back together."""

    async def crash(message: Stored, reason: str) -> None:
        raise RuntimeError("crash before commit")  # e.g. the dead letter can not be sent

    actor = PersistenceActor(pool, crash, stream=f"test-{uuid.uuid4().hex}")
    seq = random.randrange(10**12, 10**15)
    good = chain(owner)[0]
    # Postgres refuses the second event (NUL in text), so the batch is redone with
    # savepoints and the crash comes after the first event was applied inside it.
    nul = unstorable(owner)
    with pytest.raises(RuntimeError):
        await actor.apply_batch(
            [stored(good, seq), stored(nul, seq + 1)], epoch=await actor.epoch()
        )
    assert await pool.fetchval("SELECT count(*) FROM job_events WHERE seq = $1", seq) == 0
    assert await pool.fetchval("SELECT count(*) FROM jobs WHERE job_id = $1", good.job_id) == 0
    assert await actor.watermark(PARTITION) == 0


async def test_a_reader_from_before_a_rebuild_is_fenced_off(
    pool: asyncpg.Pool[Any], owner: str
) -> None:
    actor = PersistenceActor(pool, no_dead_letters, stream=f"test-{uuid.uuid4().hex}")
    seq = random.randrange(10**12, 10**15)
    event = chain(owner)[0]
    stale = await actor.epoch() - 1  # as if `replay --rebuild` ran after it started
    with pytest.raises(Fenced):
        await actor.apply_batch([stored(event, seq)], epoch=stale)
    assert await pool.fetchval("SELECT count(*) FROM job_events WHERE seq = $1", seq) == 0
    assert await actor.watermark(PARTITION) == 0
