"""Failing a job after a give-up, against the real JOBS stream."""

from __future__ import annotations

import uuid

import msgspec
import pytest
from nats.aio.client import Client as NATS
from nats.js.api import Header
from nats.js.errors import NotFoundError

from actors.deadletters import ORIGINAL_SEQ, dead_letter, fail_job
from actors.publisher import Publisher
from schemas import subjects
from schemas.events import Envelope, Failed, Rejected, Verifying, follow_up, new_event


def event_for(job_id: uuid.UUID) -> Envelope:
    return new_event(
        Verifying(), job_id=job_id, owner="deadletter-test", source="test", correlation_id="t"
    )


async def test_fail_job_publishes_failed_for_an_open_job(nc: NATS) -> None:
    js = nc.jetstream()
    event = event_for(uuid.uuid4())
    await fail_job(js, Publisher(js), event, Failed(reason="gave up", stage="t"), source="t")
    stored = await js.get_last_msg(
        subjects.JOBS_STREAM, subjects.stored_job_event(event.job_id, "failed")
    )
    failed = msgspec.json.decode(stored.data, type=Envelope).data
    assert failed == Failed(reason="gave up", stage="t")


async def test_fail_job_never_overturns_an_ended_job(nc: NATS) -> None:
    js = nc.jetstream()
    publisher = Publisher(js)
    event = event_for(uuid.uuid4())
    await publisher.publish(follow_up(event, Rejected(reason="ended first"), source="test"))
    await fail_job(js, publisher, event, Failed(reason="late", stage="t"), source="t")
    with pytest.raises(NotFoundError):
        await js.get_last_msg(
            subjects.JOBS_STREAM, subjects.stored_job_event(event.job_id, "failed")
        )


async def test_fail_job_ignores_an_event_that_itself_ends_the_job(nc: NATS) -> None:
    js = nc.jetstream()
    ending = follow_up(event_for(uuid.uuid4()), Rejected(reason="r"), source="test")
    await fail_job(js, Publisher(js), ending, Failed(reason="late", stage="t"), source="t")
    with pytest.raises(NotFoundError):
        await js.get_last_msg(
            subjects.JOBS_STREAM, subjects.stored_job_event(ending.job_id, "failed")
        )


async def test_an_event_published_with_a_precondition_is_dead_lettered_each_time(
    nc: NATS,
) -> None:
    js = nc.jetstream()
    job_id = uuid.uuid4()
    # An `uploaded` event as stored: its publish expected no earlier one on its subject.
    headers = {subjects.MSG_ID_HEADER: "m", Header.EXPECTED_LAST_SUBJECT_SEQUENCE.value: "0"}
    try:
        for stream_seq in (1, 2):  # given up on, requeued, given up on again
            await dead_letter(
                js,
                actor="test",
                stored_subject=f"jobs.{job_id}.uploaded.0",
                stream_seq=stream_seq,
                delivered=5,
                data=b"{}",
                headers=headers,
                reason="gave up",
                job_id=job_id,
            )
        stored = await js.get_last_msg(
            subjects.DEAD_LETTER_STREAM, subjects.dead_letter("test", job_id)
        )
        assert stored.headers is not None
        assert stored.headers[ORIGINAL_SEQ] == "2"
        assert Header.EXPECTED_LAST_SUBJECT_SEQUENCE.value not in stored.headers
    finally:
        await js.purge_stream(
            subjects.DEAD_LETTER_STREAM, subject=subjects.dead_letter("test", job_id)
        )
