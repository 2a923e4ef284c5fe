"""Failing a job after a give-up, against the real JOBS stream."""

from __future__ import annotations

import uuid

import msgspec
import pytest
from nats.aio.client import Client as NATS
from nats.js.errors import NotFoundError

from actors.deadletters import fail_job
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
