"""The actor runtime against the real NATS server: retries, dead letters, order.

Each test gets its own job id and its own durable consumer filtered to it, so the
running service's actors and other tests never see its messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Sequence
from typing import ClassVar

import msgspec
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, RawStreamMsg
from nats.js.errors import NotFoundError

from actors.publisher import Publisher
from actors.runtime import Delivery, Runtime
from schemas import subjects
from schemas.events import Envelope, Failed, Verifying, new_event
from schemas.settings import Settings
from tests.waits import wait_for_value


async def consumer_for(
    nc: NATS, job_id: uuid.UUID, max_deliver: int, ack_wait: float = 10.0
) -> str:
    name = f"test-{uuid.uuid4().hex[:12]}"
    await nc.jetstream().add_consumer(
        subjects.JOBS_STREAM,
        ConsumerConfig(
            name=name,
            durable_name=name,
            filter_subject=subjects.stored_job_event(job_id, "verifying"),
            ack_policy=AckPolicy.EXPLICIT,
            max_deliver=max_deliver,
            ack_wait=ack_wait,
        ),
    )
    return name


async def dead_letter_of(js: JetStreamContext, actor: str, job_id: uuid.UUID) -> RawStreamMsg:
    """The dead letter `actor` leaves for the job, waited for up to 20 s."""

    async def probe() -> RawStreamMsg | None:
        with contextlib.suppress(NotFoundError):
            return await js.get_last_msg(
                subjects.DEAD_LETTER_STREAM, subjects.dead_letter(actor, job_id)
            )
        return None

    return await wait_for_value(probe, within=20, what="dead letter")


def event_for(job_id: uuid.UUID) -> Envelope:
    return new_event(
        Verifying(), job_id=job_id, owner="runtime-test", source="test", correlation_id="t"
    )


async def test_failing_message_is_dead_lettered_and_fails_the_job(
    nc: NATS, provisioned: Settings
) -> None:
    job_id = uuid.uuid4()
    name = await consumer_for(nc, job_id, max_deliver=2)
    calls: list[int] = []

    class Failing:
        batch: ClassVar[int] = 1
        confirm_ack: ClassVar[bool] = False
        fails_job: ClassVar[bool] = True

        async def handle(self, event: Envelope, delivery: Delivery) -> Sequence[Envelope]:
            calls.append(delivery.num_delivered)
            raise RuntimeError("boom: the handler always fails")

    Failing.name = name  # type: ignore[attr-defined]
    js = nc.jetstream()
    publisher = Publisher(js)
    runtime = Runtime(Failing(), js, publisher, provisioned.replace(max_deliver=2))  # type: ignore[arg-type]
    stop = asyncio.Event()
    task = asyncio.create_task(runtime.run(stop))
    try:
        await publisher.publish(event_for(job_id))
        dead = await dead_letter_of(js, name, job_id)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await js.delete_consumer(subjects.JOBS_STREAM, name)

    assert calls == [1, 2]
    headers = dead.headers or {}
    assert headers["Conveyor-Delivered"] == "2"
    assert headers["Conveyor-Original-Subject"] == subjects.job_event(job_id, "verifying")
    assert "boom" in headers["Conveyor-Error"]
    assert msgspec.json.decode(dead.data or b"", type=Envelope).job_id == job_id
    failed = await js.get_last_msg(
        subjects.JOBS_STREAM, subjects.stored_job_event(job_id, "failed")
    )
    data = msgspec.json.decode(failed.data or b"", type=Envelope).data
    assert isinstance(data, Failed)
    assert "boom" in data.reason
    assert "gave up after 2 tries" in data.reason
    assert data.stage == name


async def test_message_whose_worker_died_on_its_last_try_is_dead_lettered(
    nc: NATS, provisioned: Settings
) -> None:
    job_id = uuid.uuid4()
    # As provisioned: the server redelivers without limit; the runtime counts.
    name = await consumer_for(nc, job_id, max_deliver=-1, ack_wait=1.0)
    took = asyncio.Event()

    class Hangs:
        batch: ClassVar[int] = 1
        confirm_ack: ClassVar[bool] = False
        fails_job: ClassVar[bool] = True

        async def handle(self, event: Envelope, delivery: Delivery) -> Sequence[Envelope]:
            took.set()
            await asyncio.Event().wait()  # never answers
            return []

    Hangs.name = name  # type: ignore[attr-defined]
    js = nc.jetstream()
    publisher = Publisher(js)
    one_try = provisioned.replace(max_deliver=1)
    dying = Runtime(Hangs(), js, publisher, one_try)  # type: ignore[arg-type]
    survivor = Runtime(Hangs(), js, publisher, one_try)  # type: ignore[arg-type]
    stop = asyncio.Event()
    first = asyncio.create_task(dying.run(stop))
    await publisher.publish(event_for(job_id))
    await asyncio.wait_for(took.wait(), 10)
    # The first worker dies mid-message: no ack, no nak, no more progress signals.
    first.cancel()
    second = asyncio.create_task(survivor.run(stop))
    try:
        dead = await dead_letter_of(js, name, job_id)
    finally:
        stop.set()
        await asyncio.wait_for(second, 10)
        await js.delete_consumer(subjects.JOBS_STREAM, name)
    assert "no answer after 1 tries" in (dead.headers or {})["Conveyor-Error"]
    assert (dead.headers or {})["Conveyor-Delivered"] == "2"
    failed = await js.get_last_msg(
        subjects.JOBS_STREAM, subjects.stored_job_event(job_id, "failed")
    )
    data = msgspec.json.decode(failed.data or b"", type=Envelope).data
    assert isinstance(data, Failed)
    assert "died or hung" in data.reason
