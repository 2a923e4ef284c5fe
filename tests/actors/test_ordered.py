"""`fetch_batch` against the real NATS server: a batch is bounded by count and by
bytes, and what it leaves comes next, in order."""

from __future__ import annotations

from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig

from actors.ordered import fetch_batch
from actors.persistence import positions


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
