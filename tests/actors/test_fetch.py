"""`fetch_batch` against the real NATS server: a batch is bounded by count and by
bytes, what it leaves comes next, in order, and a fetch that waits returns with the
first message to come."""

from __future__ import annotations

import asyncio

from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig

from actors.fetch import fetch_batch
from actors.persistence import positions
from tests.waits import eventually


async def reader(nc: NATS, bucket: str) -> JetStreamContext.PullSubscription:
    return await nc.jetstream().pull_subscribe(
        f"$KV.{bucket}.>",
        stream=f"KV_{bucket}",
        config=ConsumerConfig(ack_policy=AckPolicy.NONE, mem_storage=True),
    )


async def test_a_batch_stops_at_its_byte_budget(nc: NATS, bucket: str) -> None:
    js = nc.jetstream()
    server_max = nc.max_payload
    big = b"x" * (server_max // 3)
    # 4 of the server's largest messages' worth, then small ones.
    for i in range(16):
        await js.publish(f"$KV.{bucket}.k{i}", big if i < 12 else b"small")
    sub = await reader(nc, bucket)
    # The budget is never below two of the server's largest messages: 5 of these fit.
    first = await fetch_batch(sub, 100, wait=2.0, max_bytes=1)
    assert 5 <= len(first) < 16
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


async def test_a_waiting_fetch_returns_with_the_first_message(nc: NATS, bucket: str) -> None:
    js = nc.jetstream()
    sub = await reader(nc, bucket)
    # Nothing there yet: the fetch waits on the server, for up to a minute.
    fetching = asyncio.create_task(fetch_batch(sub, 100, wait=60.0))

    async def waiting() -> bool:
        return (await sub.consumer_info()).num_waiting == 1

    try:
        await eventually(waiting, within=10, what="the fetch's request waiting on the server")
        await js.publish(f"$KV.{bucket}.first", b"1")
        # It does not wait for 99 more, nor for its deadline.
        async with asyncio.timeout(10):
            first = await fetching
    finally:
        fetching.cancel()
    assert [m.data for m in first] == [b"1"]
    # What came after it is the next fetch's, in order.
    for i in range(2, 5):
        await js.publish(f"$KV.{bucket}.k{i}", str(i).encode())
    rest = await fetch_batch(sub, 100, wait=5.0)
    assert [m.data for m in rest] == [b"2", b"3", b"4"]
