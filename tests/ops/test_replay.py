"""`conveyor replay --rebuild` against live work: the rebuilt tables equal the live ones."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import msgspec
import pytest
from conftest import Api, Service, connect_as
from nats.aio.client import Client as NATS

from actors.persistence import PersistenceActor, Stored
from ops.connections import postgres_pool
from ops.replay import replay


@pytest.fixture
async def clients(service: Service) -> AsyncIterator[tuple[NATS, asyncpg.Pool[Any]]]:
    nc = await connect_as(service.settings, "ops")
    async with postgres_pool(service.settings, size=2) as pool:
        yield nc, pool
    await nc.close()


async def digest(pool: asyncpg.Pool[Any], owner: str) -> str:
    """Every column of the owner's jobs and events, in a stable order."""
    jobs = await pool.fetch("SELECT * FROM jobs WHERE owner = $1 ORDER BY job_id", owner)
    events = await pool.fetch(
        "SELECT e.* FROM job_events e JOIN jobs j USING (job_id) WHERE j.owner = $1 ORDER BY e.seq",
        owner,
    )
    assert jobs, "nothing to compare"
    rows = [dict(r) for r in [*jobs, *events]]
    return hashlib.sha256(msgspec.json.encode(rows, enc_hook=str)).hexdigest()


async def refuse_nothing(message: Stored, reason: str) -> None:
    raise AssertionError(reason)


async def test_rebuild_equals_live_state(
    api: Api, owner: str, service: Service, clients: tuple[NATS, asyncpg.Pool[Any]]
) -> None:
    nc, pool = clients
    ids = []
    for content in (
        b"a,b\n1,2\n3,4\n",
        bytes.fromhex("1f8b0800000000000003") + bytes(64),
        b"x\n1\n",
    ):
        ticket, _ = await api.submit(content)
        ids.append(ticket["job_id"])
    bad = await api.create_upload(b"12345", size=5)  # never uploaded: rejected
    await api.post(f"/v1/uploads/{bad['upload_id']}/complete")
    ids.append(bad["job_id"])
    statuses = [(await api.wait_terminal(i))["status"] for i in ids]
    assert statuses == ["succeeded", "succeeded", "succeeded", "rejected"]
    before = await digest(pool, owner)

    js = nc.jetstream()
    actor = PersistenceActor(pool, refuse_nothing)
    report = await replay(js, pool, actor, service.settings, rebuild=True)

    assert report.read >= 4 * 3
    assert report.first_seq == 1
    assert report.applied == report.read  # the tables were empty: everything applied
    assert await digest(pool, owner) == before
    # Live persistence took its partitions back: new work still lands.
    ticket, _ = await api.submit(b"after\n1\n")
    assert (await api.wait_terminal(ticket["job_id"]))["status"] == "succeeded"


async def test_replay_from_a_sequence_changes_nothing_applied(
    api: Api, owner: str, service: Service, clients: tuple[NATS, asyncpg.Pool[Any]]
) -> None:
    nc, pool = clients
    ticket, accepted = await api.submit(b"k\n1\n")
    await api.wait_terminal(ticket["job_id"])
    before = await digest(pool, owner)
    actor = PersistenceActor(pool, refuse_nothing)
    report = await replay(nc.jetstream(), pool, actor, service.settings, from_seq=accepted["seq"])
    assert report.read >= 4
    assert report.applied == 0
    assert await digest(pool, owner) == before
