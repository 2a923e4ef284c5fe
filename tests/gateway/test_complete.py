"""`complete` queues an upload's job once, however often and however late it is asked.

A young upload is left to JOBS' duplicate window (`test_journey`); these give the
gateway records created past the window, as if written by another process (none has
them cached).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import msgspec
import pytest
from conftest import Api
from nats.aio.client import Client as NATS
from nats.js.errors import NotFoundError

from actors.publisher import Publisher
from gateway.uploads import uploaded_data, uploaded_event_id
from ops.connections import postgres_pool
from schemas import subjects
from schemas.api import UploadRecord
from schemas.events import new_event
from schemas.keys import upload_key
from schemas.settings import Settings


@pytest.fixture
async def pool(provisioned: Settings) -> AsyncIterator[asyncpg.Pool[Any]]:
    async with postgres_pool(provisioned, size=1) as p:
        yield p


async def old_record(nc: NATS, owner: str, age: timedelta = timedelta(minutes=10)) -> UploadRecord:
    upload_id = uuid.uuid4()
    created = datetime.now(UTC) - age
    record = UploadRecord(
        upload_id=upload_id,
        job_id=uuid.uuid4(),
        owner=owner,
        filename="old.csv",
        content_type="text/csv",
        size=8,
        key=upload_key(owner, upload_id),
        created_at=created,
        expires_at=created + timedelta(minutes=15),
    )
    kv = await nc.jetstream().key_value(subjects.UPLOADS_BUCKET)
    await kv.create(str(upload_id), msgspec.json.encode(record))
    return record


async def last_uploaded_seq(nc: NATS, record: UploadRecord) -> int | None:
    try:
        msg = await nc.jetstream().get_last_msg(
            subjects.JOBS_STREAM, subjects.stored_job_event(record.job_id, "uploaded")
        )
    except NotFoundError:
        return None
    return msg.seq


async def test_late_complete_answers_the_event_in_the_stream(
    api: Api, nc: NATS, owner: str
) -> None:
    record = await old_record(nc, owner)
    # Stored under an id of its own: the duplicate window could not drop a second one.
    event = new_event(
        uploaded_data(record), job_id=record.job_id, owner=owner, source="test", correlation_id="t"
    )
    first = await Publisher(nc.jetstream()).publish(event)
    r = await api.post(f"/v1/uploads/{record.upload_id}/complete")
    assert r.status_code == 202, r.text
    assert (r.json()["job_id"], r.json()["seq"]) == (str(record.job_id), first.seq)
    assert await last_uploaded_seq(nc, record) == first.seq


async def test_late_complete_answers_the_event_persistence_applied(
    api: Api, nc: NATS, owner: str, pool: asyncpg.Pool[Any], provisioned: Settings
) -> None:
    # Older than JOBS keeps events: its event may be gone from the stream.
    age = timedelta(days=provisioned.stream_max_age_days + 1)
    record = await old_record(nc, owner, age)
    # Kept in Postgres only, at a sequence no test reaches.
    seq = 2**62 + uuid.uuid4().int % 2**32
    await pool.execute(
        "INSERT INTO job_events (seq, event_id, job_id, type, occurred_at, envelope)"
        " VALUES ($1, $2, $3, 'uploaded', now(), '{}')",
        seq,
        uploaded_event_id(record.upload_id),
        record.job_id,
    )
    try:
        r = await api.post(f"/v1/uploads/{record.upload_id}/complete")
        assert r.status_code == 202, r.text
        assert r.json()["seq"] == seq
        assert await last_uploaded_seq(nc, record) is None
    finally:
        await pool.execute("DELETE FROM job_events WHERE seq = $1", seq)


async def test_late_first_complete_queues_the_job(api: Api, nc: NATS, owner: str) -> None:
    record = await old_record(nc, owner)
    r = await api.post(f"/v1/uploads/{record.upload_id}/complete")
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "queued"
    assert await last_uploaded_seq(nc, record) == r.json()["seq"]
    again = await api.post(f"/v1/uploads/{record.upload_id}/complete")
    assert again.json()["seq"] == r.json()["seq"]
