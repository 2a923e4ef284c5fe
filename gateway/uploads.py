"""Writes: a presigned upload ticket, then `complete`, which publishes `uploaded`.

Both answer only after JetStream acknowledged what they stored. The ticket is written
once; whether it was completed is JOBS' to say: it stores one `uploaded` event per job.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from cachetools import TTLCache
from litestar import Request, post
from nats.errors import NoRespondersError
from nats.js.api import Header
from nats.js.kv import KV_OP

from actors.errors import AlreadyStored
from actors.publisher import publish_acked
from gateway.errors import NotFound, PayloadTooLarge, Unavailable
from gateway.jobs import current_status, stored_uploaded
from gateway.openapi import ProblemOperation, problems
from gateway.scopes import WRITE
from gateway.services import Services
from gateway.streams import TIMEOUT, last_message, last_message_direct
from gateway.upload_policy import clean_filename
from schemas import subjects
from schemas.api import CompleteAccepted, UploadRecord, UploadRequest, UploadTicket
from schemas.events import Uploaded, new_event
from schemas.keys import upload_key

# The `uploaded` event of an upload always has this id, so that however it is stored
# again (a requeued dead letter, a replay) persistence applies it once.
_UPLOADED_NAMESPACE = uuid.UUID("0d7bbf0b-64d4-4e3c-8d0e-5a1f6f2b7c31")


def uploaded_event_id(upload_id: uuid.UUID) -> uuid.UUID:
    return uuid.uuid5(_UPLOADED_NAMESPACE, str(upload_id))


def uploaded_data(record: UploadRecord) -> Uploaded:
    """What the `uploaded` event of `record` says."""
    return Uploaded(
        upload_id=record.upload_id,
        filename=record.filename,
        content_type=record.content_type,
        size=record.size,
        key=record.key,
    )


_record_decoder = msgspec.json.Decoder(UploadRecord)

# The header of KV's delete and purge markers, as the stream stores it (raw) and as
# nats-py parses it.
_MARKER = KV_OP.encode()


# Uploads this process created lately, so that `complete` (usually a few seconds after
# `create`, on the same keep-alive connection) skips the KV read. The record never
# changes once created: a cached one is as good as a read one.
def recent_uploads() -> TTLCache[str, UploadRecord]:
    """upload id -> record, for `Services.recent_uploads`."""
    return TTLCache(maxsize=10_000, ttl=60.0)


async def read_upload(services: Services, key: str) -> UploadRecord | None:
    """The upload record under `key`; None when there is none (or it was deleted or
    purged)."""
    # The uploads bucket is read with the JetStream API directly (gateway.streams).
    # A direct get first: the cheaper read, answered by any replica. A record is
    # written once and Conveyor never changes or deletes it, so what a replica has is
    # the record (only an operator's delete of a moment ago could still show there);
    # its absence may be a replica behind the leader, and the leader is asked then.
    subject = subjects.upload_record(key)
    try:
        found = await last_message_direct(services.inbox, subjects.UPLOADS_STREAM, subject)
    except NoRespondersError:  # a bucket provisioned before direct gets were allowed
        found = None
    if found is not None:
        if found.headers and KV_OP in found.headers:
            return None  # a delete or purge marker
        return _record_decoder.decode(found.data)
    stored = await last_message(services.inbox, subjects.UPLOADS_STREAM, subject)
    if stored is None or (stored.hdrs is not None and _MARKER in stored.hdrs):
        return None
    return _record_decoder.decode(stored.data)


async def create_record(services: Services, key: str, value: bytes) -> None:
    """Stores `value` under a key that must not exist yet (`KeyValue.create`)."""
    # Revision 0 expected: what `KeyValue.create` sends (a fresh id never exists).
    headers = {Header.EXPECTED_LAST_SUBJECT_SEQUENCE.value: "0"}
    await publish_acked(
        services.inbox, subjects.upload_record(key), value, headers=headers, ack_wait=TIMEOUT
    )


def require_event_store(services: Services) -> None:
    """A write is answered only once stored; without NATS, say so at once."""
    if not services.nc.is_connected:
        raise Unavailable("the event store is unreachable; retry shortly")


def _parse_id(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise NotFound(f"no upload {raw!r}") from None


@post(
    "/v1/uploads",
    status_code=201,
    summary="Get a presigned URL to upload a file",
    responses=problems(
        400,
        409,
        413,
        422,
        scope=WRITE,
        notes={
            413: "The body is over CONVEYOR_MAX_BODY_BYTES, or the declared `size` over"
            " CONVEYOR_MAX_UPLOAD_BYTES."
        },
    ),
    operation_class=ProblemOperation,
)
async def create_upload(
    data: UploadRequest, request: Request[str, Any, Any], services: Services
) -> UploadTicket:
    require_event_store(services)
    settings = services.settings
    if data.size > settings.max_upload_bytes:
        raise PayloadTooLarge(
            f"size {data.size} exceeds the limit of {settings.max_upload_bytes} bytes"
        )
    filename = clean_filename(data.filename)
    content_type = services.content_types.check(data.content_type)
    owner = request.user
    upload_id, job_id = uuid.uuid4(), uuid.uuid4()
    key = upload_key(owner, upload_id)
    now = datetime.now(UTC)
    expires_at = now + timedelta(seconds=settings.presign_ttl_seconds)
    # Signed: the PUT must send exactly this type and length.
    url = services.presigner.put_url(
        key,
        content_type=content_type,
        content_length=data.size,
        expires_in=settings.presign_ttl_seconds,
    )
    record = UploadRecord(
        upload_id=upload_id,
        job_id=job_id,
        owner=owner,
        filename=filename,
        content_type=content_type,
        size=data.size,
        key=key,
        created_at=now,
        expires_at=expires_at,
    )
    await create_record(services, str(upload_id), msgspec.json.encode(record))
    services.recent_uploads[str(upload_id)] = record
    return UploadTicket(
        upload_id=upload_id,
        job_id=job_id,
        method="PUT",
        url=url,
        headers={"Content-Type": content_type},
        expires_at=expires_at,
    )


@post(
    "/v1/uploads/{upload_id:str}/complete",
    status_code=202,
    summary="Tell Conveyor the upload is done; queues the job",
    responses=problems(
        404,
        409,
        422,
        scope=WRITE,
        notes={422: "An Idempotency-Key that is empty or over 255 characters."},
    ),
    operation_class=ProblemOperation,
)
async def complete_upload(
    upload_id: str, request: Request[str, Any, Any], services: Services
) -> CompleteAccepted:
    require_event_store(services)
    uid = _parse_id(upload_id)
    key = str(uid)
    # Once: a second `complete` reads the stored record.
    record = services.recent_uploads.pop(key, None) or await read_upload(services, key)
    if record is None or record.owner != request.user:
        raise NotFound(f"no upload {upload_id}")
    if record.completed_seq is not None:  # written by earlier versions
        return await _completed_before(services, record, request.user, record.completed_seq)
    event = new_event(
        uploaded_data(record),
        job_id=record.job_id,
        owner=record.owner,
        source="gateway",
        correlation_id=request.scope["state"]["request_id"],
        event_id=uploaded_event_id(record.upload_id),
    )
    try:
        # Refused if the job has an `uploaded` event already: completed before (or
        # this is a retried publish whose first try was stored).
        ack = await services.publisher.publish(event, first_of_type=True)
    except AlreadyStored:
        stored = await stored_uploaded(services, record.job_id)
        if stored is None:  # refused for an event that is gone since: nothing to answer
            raise
        return await _completed_before(services, record, request.user, stored.seq)
    return CompleteAccepted(job_id=record.job_id, status="queued", seq=ack.seq)


async def _completed_before(
    services: Services, record: UploadRecord, owner: str, seq: int
) -> CompleteAccepted:
    # As the first `complete` answered, with the job's status now.
    status = await current_status(services, record.job_id, owner)
    return CompleteAccepted(job_id=record.job_id, status=status, seq=seq)
