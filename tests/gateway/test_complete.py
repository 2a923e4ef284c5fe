"""`complete` queues an upload's job once, however often and however late it is asked:
JOBS stores one `uploaded` event per job, whatever its event id.

A second `complete` moments after the first is in `test_journey`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from datetime import UTC, datetime, timedelta

import msgspec
from conftest import Api
from nats.aio.client import Client as NATS
from nats.js.errors import NotFoundError

from actors.publisher import Publisher
from gateway.uploads import uploaded_data
from ops.processes import provision
from schemas import subjects
from schemas.api import UploadRecord
from schemas.events import new_event
from schemas.keys import upload_key
from schemas.settings import Settings


async def stored_record(nc: NATS, owner: str, *, completed_seq: int | None = None) -> UploadRecord:
    """An upload record as another gateway process wrote it (none has it cached)."""
    upload_id = uuid.uuid4()
    created = datetime.now(UTC) - timedelta(minutes=10)
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
        completed_seq=completed_seq,
    )
    kv = await nc.jetstream().key_value(subjects.UPLOADS_BUCKET)
    await kv.create(str(upload_id), msgspec.json.encode(record))
    return record


async def uploaded_seqs(nc: NATS, record: UploadRecord) -> list[int]:
    """Sequences of the job's stored `uploaded` events, oldest first."""
    js, found, seq = nc.jetstream(), [], 0
    while True:
        try:
            msg = await js.get_msg(
                subjects.JOBS_STREAM,
                seq=seq + 1,
                subject=subjects.stored_job_event(record.job_id, "uploaded"),
                next=True,
            )
        except NotFoundError:
            return found
        assert msg.seq is not None
        found.append(seq := msg.seq)


async def test_an_upload_completed_long_ago_is_not_queued_again(
    api: Api, nc: NATS, owner: str
) -> None:
    record = await stored_record(nc, owner)
    # Completed past the stream's duplicate window, or under another event id: either
    # way the id can not make a second publish a duplicate.
    event = new_event(
        uploaded_data(record),
        job_id=record.job_id,
        owner=owner,
        source="test",
        correlation_id="t",
    )
    first = await Publisher(nc.jetstream()).publish(event)
    r = await api.post(f"/v1/uploads/{record.upload_id}/complete")
    assert r.status_code == 202, r.text
    assert (r.json()["job_id"], r.json()["seq"]) == (str(record.job_id), first.seq)
    assert await uploaded_seqs(nc, record) == [first.seq]


async def test_a_stored_upload_is_queued_once(api: Api, nc: NATS, owner: str) -> None:
    record = await stored_record(nc, owner)
    answers = [await api.post(f"/v1/uploads/{record.upload_id}/complete") for _ in range(3)]
    assert [a.status_code for a in answers] == [202] * 3
    assert answers[0].json()["status"] == "queued"
    seqs = {a.json()["seq"] for a in answers}
    assert len(seqs) == 1
    assert await uploaded_seqs(nc, record) == list(seqs)


async def test_a_record_completed_by_an_earlier_version_is_answered_as_it_says(
    api: Api, nc: NATS, owner: str
) -> None:
    # Earlier versions wrote the sequence into the record instead.
    record = await stored_record(nc, owner, completed_seq=424242)
    r = await api.post(f"/v1/uploads/{record.upload_id}/complete")
    assert r.status_code == 202, r.text
    assert r.json()["seq"] == 424242
    assert await uploaded_seqs(nc, record) == []


async def test_concurrent_completes_queue_one_job(api: Api, nc: NATS, owner: str) -> None:
    record = await stored_record(nc, owner)
    path = f"/v1/uploads/{record.upload_id}/complete"
    answers = await asyncio.gather(*(api.post(path) for _ in range(6)))
    assert [a.status_code for a in answers] == [202] * 6, [a.text for a in answers]
    assert len({a.json()["seq"] for a in answers}) == 1
    assert len(await uploaded_seqs(nc, record)) == 1


async def test_a_deleted_upload_record_is_not_found(api: Api, nc: NATS, owner: str) -> None:
    # Read by direct get, a delete marker is a message like any other but for its header.
    record = await stored_record(nc, owner)
    kv = await nc.jetstream().key_value(subjects.UPLOADS_BUCKET)
    await kv.delete(str(record.upload_id))
    r = await api.post(f"/v1/uploads/{record.upload_id}/complete")
    assert r.status_code == 404, r.text
    assert await uploaded_seqs(nc, record) == []


async def test_a_bucket_without_direct_gets_is_read_through_the_api_until_provisioned(
    api: Api, nc: NATS, owner: str, provisioned: Settings
) -> None:
    # As a bucket provisioned by an earlier version is: no replica answers direct gets.
    js = nc.jetstream()
    record = await stored_record(nc, owner)
    config = (await js.stream_info(subjects.UPLOADS_STREAM)).config
    await js.update_stream(dataclasses.replace(config, allow_direct=False))
    try:
        r = await api.post(f"/v1/uploads/{record.upload_id}/complete")
        assert r.status_code == 202, r.text
        assert r.json()["job_id"] == str(record.job_id)
        assert len(await uploaded_seqs(nc, record)) == 1
    finally:
        await provision(provisioned)  # what the next start of any Conveyor process does
    assert (await js.stream_info(subjects.UPLOADS_STREAM)).config.allow_direct
