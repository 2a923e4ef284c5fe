"""Realistic job event sequences in the JOBS stream, published fast.

Each job gets the four events of a small CSV that went through the pipeline:
`uploaded`, `verifying`, `verified` and `processed` with a small `TableResult`,
built by `schemas.events.new_event` / `follow_up` exactly as the gateway and the
actors build them and published as `actors.publisher.Publisher` publishes them
(`Nats-Msg-Id`, request id, and on `uploaded` the `Nats-Expected-Last-Subject-Sequence`
that `complete` sends), but with async acks in flight.
Jobs advance in waves of `WAVE`, so the events of one job are interleaved with
those of others in the stream, as under concurrent load.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator

import msgspec
from nats.js import JetStreamContext
from nats.js.api import PubAck
from nats.js.errors import NotFoundError

from actors.publisher import event_headers
from schemas import subjects
from schemas.events import (
    Envelope,
    Processed,
    Uploaded,
    Verified,
    Verifying,
    follow_up,
    new_event,
)
from schemas.results import ColumnProfile, Histogram, TableResult, TopValue

EVENTS_PER_JOB = 4
# Jobs in flight at once: each stage of a wave is published before the next stage.
WAVE = 256

_RESULT = TableResult(
    rows=3,
    columns=[
        ColumnProfile(
            name="id",
            dtype="Int64",
            null_count=0,
            distinct_count=3,
            count=3,
            min=1,
            max=3,
            mean=2.0,
            std=1.0,
            histogram=Histogram(edges=[1.0, 2.0, 3.0], counts=[1, 2]),
        ),
        ColumnProfile(
            name="name",
            dtype="String",
            null_count=0,
            distinct_count=3,
            count=3,
            top=[TopValue(value="ada", count=1), TopValue(value="bob", count=1)],
            min_length=3,
            max_length=5,
            mean_length=3.7,
        ),
        ColumnProfile(
            name="amount",
            dtype="Float64",
            null_count=1,
            distinct_count=2,
            count=2,
            min=9.5,
            max=12.25,
            mean=10.875,
        ),
    ],
    preview=[
        {"id": 1, "name": "ada", "amount": 9.5},
        {"id": 2, "name": "bob", "amount": 12.25},
        {"id": 3, "name": "carol", "amount": None},
    ],
)


def _wave(first_job: int, jobs: int) -> Iterator[Envelope]:
    """The events of `jobs` jobs, stage after stage."""
    uploaded = []
    for n in range(first_job, first_job + jobs):
        job_id = uuid.uuid4()
        uploaded.append(
            new_event(
                Uploaded(
                    upload_id=uuid.uuid4(),
                    filename=f"table-{n}.csv",
                    content_type="text/csv",
                    size=2048 + n % 4096,
                    key=f"uploads/{job_id}/table-{n}.csv",
                ),
                job_id=job_id,
                owner=f"owner-{n % 97}",
                source="gateway",
                correlation_id=f"req-{n}",
            )
        )
    yield from uploaded
    verifying = [follow_up(e, Verifying(), source="upload") for e in uploaded]
    yield from verifying
    verified = []
    for e, u in zip(verifying, uploaded, strict=True):
        assert isinstance(u.data, Uploaded)
        verified.append(
            follow_up(
                e,
                Verified(
                    key=u.data.key,
                    filename=u.data.filename,
                    size=u.data.size,
                    sha256=f"{u.job_id.hex}{u.job_id.hex}",
                    mime="text/csv",
                    etag=f'"{u.id.hex}"',
                ),
                source="upload",
            )
        )
    yield from verified
    for e in verified:
        assert isinstance(e.data, Verified)
        yield follow_up(
            e,
            Processed(
                processor="tabular",
                result_key=f"results/{e.job_id}/result.json",
                result=_RESULT,
            ),
            source="processing",
        )


def job_events(count: int) -> Iterator[Envelope]:
    """`count` events (rounded up to whole waves of whole jobs)."""
    jobs = -(-count // EVENTS_PER_JOB)
    done = 0
    while done < jobs:
        wave = min(WAVE, jobs - done)
        yield from _wave(done, wave)
        done += wave


async def publish(
    js: JetStreamContext,
    count: int,
    *,
    progress: Callable[[int], None] | None = None,
) -> tuple[int, float]:
    """Publishes `count` events (whole jobs) to JOBS with acks outstanding up to the
    JetStream context's `publish_async_max_pending` (nats-py's default, 4000, holds
    publishing back); returns (events stored, seconds). A refused publish stops the
    fill."""
    encoder = msgspec.json.Encoder()
    errors: list[BaseException] = []
    published = 0
    started = time.perf_counter()

    def settled(future: asyncio.Future[PubAck]) -> None:
        if not future.cancelled() and (exc := future.exception()) is not None:
            errors.append(exc)

    for event in job_events(count):
        future = await js.publish_async(
            subjects.job_event(event.job_id, event.type),
            encoder.encode(event),
            headers=event_headers(event, first_of_type=event.type == "uploaded"),
        )
        future.add_done_callback(settled)
        published += 1
        if errors:
            raise errors[0]
        if progress is not None and published % 100_000 == 0:
            progress(published)
    await asyncio.wait_for(js.publish_async_completed(), timeout=60)
    if errors:
        raise errors[0]
    return published, time.perf_counter() - started


async def fill(js: JetStreamContext, count: int, echo: Callable[[str], None]) -> tuple[int, float]:
    """`publish`, telling `echo` how it goes; returns (events stored, seconds)."""
    echo(f"filling JOBS with {count:,} events")
    published, seconds = await publish(js, count, progress=lambda n: echo(f"  {n:,} published"))
    echo(f"filled: {published:,} events in {seconds:.1f}s")
    return published, seconds


async def partition_ends(js: JetStreamContext, partitions: int) -> dict[int, int]:
    """The last stream sequence stored in each partition (0 for an empty one)."""
    ends: dict[int, int] = {}
    for partition in range(partitions):
        try:
            last = await js.get_last_msg(subjects.JOBS_STREAM, subjects.stored_partition(partition))
            ends[partition] = int(last.seq or 0)
        except NotFoundError:
            ends[partition] = 0
    return ends
