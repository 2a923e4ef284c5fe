"""HTTP API bodies. Request bodies forbid unknown fields: a client can not set
`owner`, `status` or ids by adding them to a body."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Final, Literal

import msgspec

from schemas.results import Result
from schemas.webhooks import EventType

JobStatus = Literal["queued", "verifying", "processing", "succeeded", "failed", "rejected"]
ENDED_STATUSES: Final = frozenset({"succeeded", "failed", "rejected"})
"""A job in one of these will not change again."""


class UploadRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    # No control characters: they break logs, headers and Postgres (NUL). A full path
    # may be sent; the gateway keeps its last segment (at most 255 bytes).
    filename: Annotated[
        str, msgspec.Meta(min_length=1, max_length=1024, pattern=r"^[^\x00-\x1f\x7f]+$")
    ]
    content_type: Annotated[
        str, msgspec.Meta(min_length=3, max_length=127, pattern=r"^[\w.+-]+/[\w.+-]+$")
    ]
    size: Annotated[int, msgspec.Meta(ge=0)]


class UploadTicket(msgspec.Struct, frozen=True, kw_only=True):
    upload_id: uuid.UUID
    job_id: uuid.UUID
    method: Literal["PUT"]
    url: str
    headers: dict[str, str]
    expires_at: datetime


class CompleteAccepted(msgspec.Struct, frozen=True, kw_only=True):
    job_id: uuid.UUID
    status: JobStatus
    seq: int


class FeedFrame(msgspec.Struct, frozen=True, kw_only=True):
    """One frame of WS /v1/events: an event of the caller's, as stored, and its stream
    sequence, which `?after=` resumes from."""

    seq: int
    event: msgspec.Raw


class JobView(msgspec.Struct, frozen=True, kw_only=True):
    job_id: uuid.UUID
    upload_id: uuid.UUID
    filename: str
    content_type: str
    size: int
    sha256: str | None
    status: JobStatus
    result: Result | None
    error: str | None
    created_at: datetime
    updated_at: datetime


class JobPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[JobView]
    next_cursor: str | None


class ArtifactLink(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    content_type: str
    size: int
    url: str
    """A presigned GET, valid until `ArtifactList.expires_at`."""


class ArtifactList(msgspec.Struct, frozen=True, kw_only=True):
    job_id: uuid.UUID
    artifacts: list[ArtifactLink]
    expires_at: datetime


class Problem(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """RFC 9457 problem details."""

    status: int
    title: str
    detail: str
    type: str = "about:blank"
    instance: str | None = None
    request_id: str | None = None
    errors: list[dict[str, Any]] | None = None


class Readiness(msgspec.Struct, frozen=True, kw_only=True):
    ready: bool
    checks: dict[str, str]


class UploadRecord(msgspec.Struct, frozen=True, kw_only=True):
    """An upload ticket as kept in the `uploads` JetStream KV bucket, written once.

    Whether it was completed is in JOBS (its `uploaded` event). `completed_seq` is
    what earlier versions recorded here instead, still honoured in records they wrote.
    """

    upload_id: uuid.UUID
    job_id: uuid.UUID
    owner: str
    filename: str
    content_type: str
    size: int
    key: str
    created_at: datetime
    expires_at: datetime
    completed_seq: int | None = None


class WebhookRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    # Checked further by the gateway: http(s), a host, no credentials, and (unless
    # CONVEYOR_WEBHOOK_ALLOW_PRIVATE) no private, loopback or link-local address.
    url: Annotated[str, msgspec.Meta(min_length=8, max_length=2048)]
    events: Annotated[list[EventType], msgspec.Meta(min_length=1, max_length=6)] | None = None


class WebhookView(msgspec.Struct, frozen=True, kw_only=True):
    webhook_id: uuid.UUID
    url: str
    events: list[EventType]
    created_at: datetime


class WebhookCreated(WebhookView, frozen=True, kw_only=True):
    secret: str
    """Verifies `Conveyor-Signature` on each delivery; in this answer only (and its
    replay for the same Idempotency-Key)."""


class WebhookList(msgspec.Struct, frozen=True, kw_only=True):
    items: list[WebhookView]
