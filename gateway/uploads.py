"""Writes: a presigned upload ticket, then `complete`, which publishes `uploaded`.

Both answer only after JetStream acknowledged what they stored.
"""

from __future__ import annotations

import contextlib
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from litestar import Request, post
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError

from gateway.errors import NotFound, PayloadTooLarge, Unavailable
from gateway.jobs import current_status
from gateway.openapi import ProblemOperation, problems
from gateway.scopes import WRITE
from gateway.services import Services
from gateway.upload_policy import clean_filename
from schemas.api import CompleteAccepted, UploadRecord, UploadRequest, UploadTicket
from schemas.events import Uploaded, new_event
from schemas.keys import upload_key

# The `uploaded` event of an upload always has this id, so completing twice
# (or a retried publish) is dropped by the stream's duplicate window.
_UPLOADED_NAMESPACE = uuid.UUID("0d7bbf0b-64d4-4e3c-8d0e-5a1f6f2b7c31")
_record_decoder = msgspec.json.Decoder(UploadRecord)


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
    url = await services.s3_public.generate_presigned_url(
        "put_object",
        Params={
            "Bucket": settings.s3_bucket,
            "Key": key,
            # Signed: the PUT must send exactly this type and length.
            "ContentType": content_type,
            "ContentLength": data.size,
        },
        ExpiresIn=settings.presign_ttl_seconds,
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
    await services.uploads.create(str(upload_id), msgspec.json.encode(record))
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
    try:
        entry = await services.uploads.get(str(uid))
    except KeyNotFoundError:
        raise NotFound(f"no upload {upload_id}") from None
    record = _record_decoder.decode(entry.value or b"")
    if record.owner != request.user:
        raise NotFound(f"no upload {upload_id}")
    if record.completed_seq is not None:
        status = await current_status(services, record.job_id, request.user)
        return CompleteAccepted(job_id=record.job_id, status=status, seq=record.completed_seq)
    event = new_event(
        Uploaded(
            upload_id=record.upload_id,
            filename=record.filename,
            content_type=record.content_type,
            size=record.size,
            key=record.key,
        ),
        job_id=record.job_id,
        owner=record.owner,
        source="gateway",
        correlation_id=request.scope["state"]["request_id"],
        event_id=uuid.uuid5(_UPLOADED_NAMESPACE, str(record.upload_id)),
    )
    ack = await services.publisher.publish(event)
    done = msgspec.structs.replace(record, completed_seq=ack.seq)
    # A concurrent complete may have recorded it first; the stream stored the event once.
    with contextlib.suppress(KeyWrongLastSequenceError):
        await services.uploads.update(str(uid), msgspec.json.encode(done), last=entry.revision)
    return CompleteAccepted(job_id=record.job_id, status="queued", seq=ack.seq)
