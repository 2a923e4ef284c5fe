"""Writes: a presigned upload ticket, then `complete`, which publishes `uploaded`.

Both answer only after JetStream acknowledged what they stored.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from cachetools import TTLCache
from litestar import Request, post
from nats.js.api import DEFAULT_PREFIX, Header
from nats.js.errors import APIError

from actors.publisher import publish_acked
from gateway.errors import NotFound, PayloadTooLarge, Unavailable
from gateway.jobs import current_status
from gateway.openapi import ProblemOperation, problems
from gateway.scopes import WRITE
from gateway.services import Services
from gateway.upload_policy import clean_filename
from schemas import subjects
from schemas.api import CompleteAccepted, UploadRecord, UploadRequest, UploadTicket
from schemas.events import Uploaded, new_event
from schemas.keys import upload_key

# The `uploaded` event of an upload always has this id, so completing twice
# (or a retried publish) is dropped by the stream's duplicate window.
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

# The uploads bucket, read and written with the JetStream API directly: nats-py's
# KeyValue parses every answer with `json` and the `email` header parser, which cost
# about as much as the round trip itself.
_KV_STREAM = f"{subjects.KV_STREAM_PREFIX}{subjects.UPLOADS_BUCKET}"
_KV_SUBJECT = f"{subjects.KV_PREFIX}.{subjects.UPLOADS_BUCKET}."
_MSG_GET = f"{DEFAULT_PREFIX}.STREAM.MSG.GET."
_TIMEOUT = 5.0


# Uploads this process created lately, so that `complete` (usually a few seconds after
# `create`, on the same keep-alive connection) skips the KV read. The record never
# changes once created: a cached one is as good as a read one.
def recent_uploads() -> TTLCache[str, UploadRecord]:
    """upload id -> record, for `Services.recent_uploads`."""
    return TTLCache(maxsize=10_000, ttl=60.0)


# `complete` publishes the `uploaded` event at once while the upload is this young: if
# it was completed before, that was within JOBS' duplicate window, which drops the
# event again. Half the window leaves room for gateways' clocks to differ by a minute.
_SURELY_DEDUPLICATED = timedelta(seconds=subjects.JOBS_DUPLICATE_WINDOW / 2)


class _Stored(msgspec.Struct):
    seq: int
    data: bytes = b""  # base64 in the answer
    hdrs: bytes | None = None


class _MsgGet(msgspec.Struct):
    message: _Stored | None = None
    error: dict[str, Any] | None = None


_msg_get_decoder = msgspec.json.Decoder(_MsgGet)


async def _last_message(services: Services, stream: str, subject: str) -> _Stored | None:
    """The last message of `stream` on `subject` (wildcards allowed), or None."""
    request = b'{"last_by_subj":"' + subject.encode() + b'"}'
    msg = await services.inbox.request(_MSG_GET + stream, request, wait=_TIMEOUT)
    answer = _msg_get_decoder.decode(msg.data)
    if answer.error is not None:
        if answer.error.get("code") == 404:
            return None
        APIError.from_error(answer.error)  # raises the error's own class
    return answer.message


async def read_upload(services: Services, key: str) -> UploadRecord | None:
    """The upload record under `key`; None when there is none (or it was deleted or
    purged)."""
    stored = await _last_message(services, _KV_STREAM, _KV_SUBJECT + key)
    if stored is None or (stored.hdrs is not None and b"KV-Operation" in stored.hdrs):
        return None  # a delete or purge marker
    return _record_decoder.decode(stored.data)


async def create_record(services: Services, key: str, value: bytes) -> None:
    """Stores `value` under a key that must not exist yet (`KeyValue.create`)."""
    # Revision 0 expected: what `KeyValue.create` sends (a fresh id never exists).
    headers = {Header.EXPECTED_LAST_SUBJECT_SEQUENCE.value: "0"}
    await publish_acked(
        services.inbox, _KV_SUBJECT + key, value, headers=headers, ack_wait=_TIMEOUT
    )


async def uploaded_seq(services: Services, record: UploadRecord, event_id: uuid.UUID) -> int | None:
    """The sequence the upload's `uploaded` event was stored at, if it was: from JOBS,
    which keeps every event younger than its max age, then from what persistence
    applied (only asked for uploads older than that)."""
    subject = subjects.stored_job_event(record.job_id, "uploaded")
    stored = await _last_message(services, subjects.JOBS_STREAM, subject)
    if stored is not None:
        return stored.seq
    max_age = timedelta(days=services.settings.stream_max_age_days)
    if datetime.now(UTC) - record.created_at < max_age:
        return None
    seq: int | None = await services.pool.fetchval(
        "SELECT seq FROM job_events WHERE event_id = $1", event_id
    )
    return seq


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
    event_id = uploaded_event_id(record.upload_id)
    # Completed before? A record stored before `uploaded_seq` existed says so itself;
    # a young upload is left to the stream's duplicate window (no request needed).
    seq = record.completed_seq
    if seq is None and datetime.now(UTC) - record.created_at >= _SURELY_DEDUPLICATED:
        seq = await uploaded_seq(services, record, event_id)
    if seq is not None:
        status = await current_status(services, record.job_id, request.user)
        return CompleteAccepted(job_id=record.job_id, status=status, seq=seq)
    event = new_event(
        uploaded_data(record),
        job_id=record.job_id,
        owner=record.owner,
        source="gateway",
        correlation_id=request.scope["state"]["request_id"],
        event_id=event_id,
    )
    ack = await services.publisher.publish(event)
    # A duplicate was completed before (the stream answered the first sequence): as a
    # second `complete` would answer, with the job's status now.
    status = (
        await current_status(services, record.job_id, request.user) if ack.duplicate else "queued"
    )
    return CompleteAccepted(job_id=record.job_id, status=status, seq=ack.seq)
