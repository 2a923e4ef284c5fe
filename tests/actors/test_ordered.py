"""`fetch_batch` against the real NATS server: a batch is bounded by count and by
bytes, and what it leaves comes next, in order."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig

from actors.ordered import fetch_batch
from actors.persistence import positions


@pytest.fixture
async def bucket(nc: NATS) -> AsyncIterator[str]:
    """A stream of the test's own (not JOBS: the running actors would read it), as a
    key-value bucket: the subjects the `ops` user may publish to."""
    name = f"test-ordered-{uuid.uuid4().hex[:12]}"
    await nc.jetstream().create_key_value(bucket=name)
    yield name
    await nc.jetstream().delete_key_value(name)


async def reader(nc: NATS, bucket: str) -> JetStreamContext.PullSubscription:
    return await nc.jetstream().pull_subscribe(
        f"$KV.{bucket}.>",
        stream=f"KV_{bucket}",
        config=ConsumerConfig(ack_policy=AckPolicy.NONE, mem_storage=True),
    )


async def test_a_batch_stops_at_its_byte_budget(nc: NATS, bucket: str) -> None:
    js = nc.jetstream()
    big = b"x" * (nc.max_payload // 3)
    # 4 of the server's largest messages' worth, then small ones.
    for i in range(16):
        await js.publish(f"$KV.{bucket}.k{i}", big if i < 12 else b"small")
    sub = await reader(nc, bucket)
    server_max = nc.max_payload
    # The budget is never below two of the server's largest messages.
    first = await fetch_batch(sub, 100, wait=2.0, max_bytes=1)
    assert 1 <= len(first) < 16
    assert sum(len(m.data) for m in first) <= 2 * server_max
    seen = [positions(m)[0] for m in first]
    while len(seen) < 16:
        seen += [positions(m)[0] for m in await fetch_batch(sub, 100, wait=2.0, max_bytes=1)]
    assert seen == list(range(1, 17))


async def test_a_batch_stops_at_its_count(nc: NATS, bucket: str) -> None:
    js = nc.jetstream()
    for i in range(10):
        await js.publish(f"$KV.{bucket}.k{i}", str(i).encode())
    sub = await reader(nc, bucket)
    first = await fetch_batch(sub, 4, wait=2.0)
    rest = await fetch_batch(sub, 100, wait=2.0)
    assert [m.data for m in first + rest] == [str(i).encode() for i in range(10)]
    assert len(first) == 4
