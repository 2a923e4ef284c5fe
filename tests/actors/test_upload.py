"""The upload actor against the real S3 and JetStream: what it says of the stored object.

Each test uses an object key and a job id of its own; the `verifying` the actor publishes
first goes to the real JOBS stream under that job.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import msgspec
import pytest
from nats.aio.client import Client as NATS

from actors.publisher import Publisher
from actors.runtime import Delivery
from actors.upload import UploadActor
from ops.connections import s3_client
from schemas.events import Envelope, Rejected, Verified
from schemas.settings import Settings
from tests.events import uploaded_event

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client


@pytest.fixture
async def s3(provisioned: Settings) -> AsyncIterator[S3Client]:
    async with s3_client(provisioned) as client:
        yield client


@pytest.fixture
def actor(s3: S3Client, nc: NATS, provisioned: Settings) -> UploadActor:
    return UploadActor(s3, provisioned.s3_bucket, Publisher(nc.jetstream()))


def uploaded(owner: str, key: str, size: int) -> Envelope:
    return uploaded_event(owner, filename="a.csv", size=size, key=key)


async def verdict(actor: UploadActor, event: Envelope) -> Verified | Rejected:
    delivery = Delivery(
        subject="test", stream_seq=1, num_delivered=1, data=msgspec.json.encode(event)
    )
    [answer] = await actor.handle(event, delivery)
    assert answer.job_id == event.job_id
    assert isinstance(answer.data, (Verified, Rejected))
    return answer.data


async def test_a_stored_object_is_verified_with_its_digest_and_etag(
    actor: UploadActor, s3: S3Client, provisioned: Settings, owner: str
) -> None:
    key = f"test/{uuid.uuid4()}"
    content = b"id,name\n" + b"1,ada\n" * 200_000  # more than one read of CHUNK bytes
    await s3.put_object(Bucket=provisioned.s3_bucket, Key=key, Body=content)
    head = await s3.head_object(Bucket=provisioned.s3_bucket, Key=key)

    answer = await verdict(actor, uploaded(owner, key, len(content)))

    assert answer == Verified(
        key=key,
        filename="a.csv",
        size=len(content),
        sha256=hashlib.sha256(content).hexdigest(),
        mime="text/csv",
        etag=head["ETag"],
    )


async def test_a_missing_object_is_rejected(actor: UploadActor, owner: str) -> None:
    answer = await verdict(actor, uploaded(owner, f"test/{uuid.uuid4()}", 10))
    assert answer == Rejected(reason="no object was uploaded for this upload_id")


@pytest.mark.parametrize("declared", [5, 50])
async def test_another_size_than_declared_is_rejected_before_reading(
    actor: UploadActor, s3: S3Client, provisioned: Settings, owner: str, declared: int
) -> None:
    key = f"test/{uuid.uuid4()}"
    await s3.put_object(Bucket=provisioned.s3_bucket, Key=key, Body=b"x" * 20)
    answer = await verdict(actor, uploaded(owner, key, declared))
    assert answer == Rejected(reason=f"size mismatch: declared {declared} bytes, stored 20")
