"""Partition leases on the real KV bucket: fair shares, hand-over, release.

Each test leases for its own actor name, so the service's persistence is untouched.
"""

from __future__ import annotations

import uuid

from nats.aio.client import Client as NATS

from actors.leases import Leases
from schemas import subjects


async def test_members_split_partitions_and_take_over_on_release(nc: NATS) -> None:
    kv = await nc.jetstream().key_value(subjects.LEASES_BUCKET)
    actor = f"test{uuid.uuid4().hex[:8]}"
    a = Leases(kv, actor, "a", partitions=8)
    b = Leases(kv, actor, "b", partitions=8)
    assert await a.refresh() == set(range(8))
    # b joins: nothing is free yet, but a now sees two members and gives half back.
    assert await b.refresh() == set()
    kept = await a.refresh()
    assert len(kept) == 4
    await a.release_surplus()  # what the runtime does once those workers stopped
    taken = await b.refresh()
    assert taken == set(range(8)) - kept
    # Renewals keep them apart.
    assert await a.refresh() == kept
    assert await b.refresh() == taken
    # a leaves cleanly: b takes everything over at once.
    await a.release_all()
    assert await b.refresh() == set(range(8))
    await b.release_all()
