"""`conveyor status` and `conveyor dlq` against the running service."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator

import msgspec
import pytest
from conftest import Api, Service, connect_as
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.api import RawStreamMsg
from nats.js.errors import NotFoundError

from actors.deadletters import dead_letter
from ops import dlq
from ops.connections import postgres_pool
from ops.status import collect, render
from schemas import subjects
from schemas.events import Uploaded, new_event
from schemas.ops import DeadLetterView, Status
from tests.waits import wait_for_value


@pytest.fixture
async def nc(service: Service) -> AsyncIterator[NATS]:
    client = await connect_as(service.settings, "ops")
    yield client
    await client.close()


async def letters_of(js: JetStreamContext, job_id: uuid.UUID) -> list[DeadLetterView]:
    return [dlq.view(m) async for m in dlq.letters(js) if str(job_id) in (m.subject or "")]


async def test_status_reports_streams_consumers_and_lag(
    api: Api, service: Service, nc: NATS
) -> None:
    ticket, _ = await api.submit(b"s\n1\n")
    await api.wait_terminal(ticket["job_id"])
    async with postgres_pool(service.settings, size=1) as pool:

        async def caught_up() -> Status | None:
            status = await collect(nc.jetstream(), pool, service.settings)
            return status if all(p.lag == 0 for p in status.persistence) else None

        status = await wait_for_value(caught_up, within=20, what="persistence lag 0")
    # The lag probes are deleted once read, not left for the server to expire.
    consumers = await nc.jetstream().consumers_info(subjects.JOBS_STREAM)
    assert [c.name for c in consumers if c.name.startswith("status-")] == []
    jobs = status.streams[0]
    assert jobs.name == "JOBS"
    assert jobs.messages >= 4
    assert [c.name for c in status.consumers] == [
        "upload",
        "processing",
        "notification",
        "webhooks",
    ]
    assert len(status.persistence) == service.settings.partitions
    assert max(p.watermark for p in status.persistence) <= jobs.last_seq
    assert all(p.owner for p in status.persistence)
    text = render(status)
    assert "persistence partition" in text
    assert msgspec.json.decode(msgspec.json.encode(status))["streams"][0]["name"] == "JOBS"


async def test_dead_letter_list_show_retry_purge(api: Api, owner: str, nc: NATS) -> None:
    js = nc.jetstream()
    job_id = uuid.uuid4()
    event = new_event(
        Uploaded(
            upload_id=uuid.uuid4(),
            filename="d.csv",
            content_type="text/csv",
            size=3,
            key="uploads/none/missing",
        ),
        job_id=job_id,
        owner=owner,
        source="test",
        correlation_id="dlq-test",
    )
    await dead_letter(
        js,
        actor="upload",
        stored_subject=f"jobs.{job_id}.uploaded.0",
        stream_seq=10**9 + 7,
        delivered=5,
        data=msgspec.json.encode(event),
        headers={"Nats-Msg-Id": str(event.id)},
        reason="S3 unreachable (test)",
        job_id=job_id,
    )
    mine = await letters_of(js, job_id)
    assert len(mine) == 1
    letter = mine[0]
    assert letter.original_subject == f"jobs.{job_id}.uploaded"
    assert (letter.actor, letter.delivered, letter.error) == ("upload", 5, "S3 unreachable (test)")
    assert dlq.view(await dlq.get(js, letter.seq)) == letter

    # Retried: the upload actor takes it again; its object never existed, so: rejected.
    await dlq.retry(js, letter.seq)
    job = await api.wait_terminal(str(job_id))
    assert job["status"] == "rejected"
    with pytest.raises(Exception, match="no dead letter"):
        await dlq.get(js, letter.seq)

    await dead_letter(
        js,
        actor="upload",
        stored_subject=f"jobs.{job_id}.uploaded.0",
        stream_seq=10**9 + 8,
        delivered=1,
        data=b"{}",
        headers=None,
        reason="x",
        job_id=job_id,
    )
    again = await letters_of(js, job_id)
    assert await dlq.purge(js, again[0].seq) == 1
    assert await letters_of(js, job_id) == []


async def test_event_postgres_refuses_fails_the_job_and_is_not_retried(
    owner: str, nc: NATS
) -> None:
    from actors.publisher import Publisher
    from ops.errors import OpsError

    js = nc.jetstream()
    job_id = uuid.uuid4()
    # Straight onto the stream (the gateway refuses such a name): NUL is not text to Postgres.
    bad = new_event(
        Uploaded(
            upload_id=uuid.uuid4(),
            filename="nul\x00.csv",
            content_type="text/csv",
            size=1,
            key="uploads/none/nul",
        ),
        job_id=job_id,
        owner=owner,
        source="test",
        correlation_id="nul-test",
    )
    await Publisher(js).publish(bad)
    letter = subjects.dead_letter(subjects.PERSISTENCE, job_id)

    async def dead_and_failed() -> tuple[RawStreamMsg, RawStreamMsg] | None:
        with contextlib.suppress(NotFoundError):
            dead = await js.get_last_msg(subjects.DEAD_LETTER_STREAM, letter)
            failed = await js.get_last_msg(
                subjects.JOBS_STREAM, subjects.stored_job_event(job_id, "failed")
            )
            return dead, failed
        return None

    dead, failed = await wait_for_value(
        dead_and_failed, within=30, what="refused event dead-lettered and failed"
    )
    assert "could not be stored" in msgspec.json.decode(failed.data or b"")["data"]["reason"]
    with pytest.raises(OpsError, match="refused by Postgres"):
        await dlq.retry(js, dead.seq or 0)
    await dlq.purge(js, dead.seq)
