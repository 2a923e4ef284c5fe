"""`conveyor status`: streams, consumers, persistence lag per partition, dead letters."""

from __future__ import annotations

import contextlib
import uuid
from typing import Any

import asyncpg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import KeyNotFoundError, NotFoundError

from schemas import subjects
from schemas.ops import ConsumerStatus, PartitionStatus, Status, StreamStatus
from schemas.settings import Settings


async def collect(
    js: JetStreamContext, pool: asyncpg.Pool[Any], settings: Settings, *, lag: bool = True
) -> Status:
    """`lag=False` skips counting each partition's lag, which needs consumers created."""
    streams = []
    for name in (subjects.JOBS_STREAM, subjects.DEAD_LETTER_STREAM):
        state = (await js.stream_info(name)).state
        streams.append(
            StreamStatus(
                name=name,
                messages=state.messages,
                bytes=state.bytes,
                first_seq=state.first_seq,
                last_seq=state.last_seq,
            )
        )
    consumers = []
    for name in subjects.CONSUMER_FILTERS:
        info = await js.consumer_info(subjects.JOBS_STREAM, name)
        consumers.append(
            ConsumerStatus(
                name=name,
                pending=info.num_pending or 0,
                ack_pending=info.num_ack_pending or 0,
                redelivered=info.num_redelivered or 0,
                waiting=info.num_waiting or 0,
            )
        )
    marks = dict(
        await pool.fetch(
            "SELECT partition, seq FROM watermarks WHERE stream = $1", subjects.JOBS_STREAM
        )
    )
    kv = await js.key_value(subjects.LEASES_BUCKET)
    partitions = []
    for partition in range(settings.partitions):
        mark = int(marks.get(partition, 0))
        owner = None
        with contextlib.suppress(KeyNotFoundError):
            entry = await kv.get(subjects.partition_lease(subjects.PERSISTENCE, partition))
            owner = (entry.value or b"").decode() or None
        partitions.append(
            PartitionStatus(
                partition=partition,
                watermark=mark,
                lag=await _pending_after(js, partition, mark) if lag else None,
                owner=owner,
            )
        )
    return Status(
        streams=streams,
        consumers=consumers,
        persistence=partitions,
        dead_letters=streams[1].messages,
    )


async def _pending_after(js: JetStreamContext, partition: int, seq: int) -> int:
    """How many events of `partition` follow `seq`: what a reader from there would get.

    Asked of a throwaway consumer, deleted once read (only `ops` counts lag: the
    gateway's admin route asks for `lag=False`); should the delete not happen, the
    server removes it once idle.
    """
    info = await js.add_consumer(
        subjects.JOBS_STREAM,
        ConsumerConfig(
            name=f"status-{uuid.uuid4().hex}",
            filter_subject=subjects.stored_partition(partition),
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=seq + 1,
            ack_policy=AckPolicy.NONE,
            inactive_threshold=5.0,
            mem_storage=True,
        ),
    )
    with contextlib.suppress(NotFoundError):  # gone already: idle past the threshold
        await js.delete_consumer(subjects.JOBS_STREAM, info.name)
    return info.num_pending or 0


def render(status: Status) -> str:
    lines = ["stream        messages        bytes   first_seq    last_seq"]
    for s in status.streams:
        lines.append(
            f"{s.name:<12} {s.messages:>9} {s.bytes:>12} {s.first_seq:>11} {s.last_seq:>11}"
        )
    lines += ["", "consumer       pending  ack_pending  redelivered  waiting"]
    for c in status.consumers:
        lines.append(
            f"{c.name:<13} {c.pending:>8} {c.ack_pending:>12} {c.redelivered:>12} {c.waiting:>8}"
        )
    lines += ["", "persistence partition  watermark      lag  owner"]
    for p in status.persistence:
        lag = "-" if p.lag is None else p.lag
        lines.append(f"{p.partition:>21} {p.watermark:>10} {lag:>8}  {p.owner or '-'}")
    lines += ["", f"dead letters: {status.dead_letters}"]
    return "\n".join(lines)
