"""Job events: the envelope published on `jobs.<job_id>.<type>` and its data union.

Between actors, unknown fields are tolerated (msgspec ignores them), so a newer
producer never breaks an older consumer. New fields get defaults; types never change.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Final

import msgspec

from schemas.results import Artifact, Result

# Derived events get ids computed from their cause, so a handler that runs twice
# for one message emits the same ids and JetStream / Postgres drop the repeat.
_EVENT_NAMESPACE: Final = uuid.UUID("5b0f6c1e-8a7d-4c55-9a84-3c1e2f7d9b10")


class Uploaded(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="uploaded"):
    """The client says the bytes are in S3; the job is queued for verification."""

    upload_id: uuid.UUID
    filename: str
    content_type: str
    size: int
    key: str


class Verifying(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="verifying"):
    pass


class Verified(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="verified"):
    key: str
    filename: str
    size: int
    sha256: str
    mime: str
    # The S3 ETag of what was verified: processing reads exactly that version.
    etag: str = ""


class Rejected(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="rejected"):
    """The upload does not match what was declared (missing, wrong size...)."""

    reason: str


class Processed(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="processed"):
    processor: str
    result_key: str
    result: Result
    artifacts: list[Artifact] = []


class Failed(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="failed"):
    reason: str
    stage: str = ""


EventData = Uploaded | Verifying | Verified | Rejected | Processed | Failed

TERMINAL: Final = frozenset({"processed", "rejected", "failed"})


class Envelope(msgspec.Struct, frozen=True, kw_only=True):
    """One job event. `type` repeats the tag of `data` so routers need not decode `data`."""

    id: uuid.UUID
    type: str
    version: int = 1
    occurred_at: datetime
    source: str
    job_id: uuid.UUID
    owner: str
    correlation_id: str
    causation_id: uuid.UUID | None = None
    data: EventData


class EventHead(msgspec.Struct, frozen=True, kw_only=True):
    """An envelope's routing fields alone: decoding it skips `data` (and anything new)."""

    job_id: uuid.UUID
    type: str
    owner: str


def _tag(data: EventData) -> str:
    tag = type(data).__struct_config__.tag
    assert isinstance(tag, str)
    return tag


def new_event(
    data: EventData,
    *,
    job_id: uuid.UUID,
    owner: str,
    source: str,
    correlation_id: str,
    event_id: uuid.UUID | None = None,
) -> Envelope:
    """A first event in a chain (the gateway's); its id is random unless given."""
    return Envelope(
        id=event_id or uuid.uuid4(),
        type=_tag(data),
        occurred_at=datetime.now(UTC),
        source=source,
        job_id=job_id,
        owner=owner,
        correlation_id=correlation_id,
        data=data,
    )


def follow_up(cause: Envelope, data: EventData, *, source: str) -> Envelope:
    """An event caused by `cause`, with an id derived from it (see `_EVENT_NAMESPACE`)."""
    tag = _tag(data)
    return Envelope(
        id=uuid.uuid5(_EVENT_NAMESPACE, f"{cause.id}:{tag}"),
        type=tag,
        occurred_at=datetime.now(UTC),
        source=source,
        job_id=cause.job_id,
        owner=cause.owner,
        correlation_id=cause.correlation_id,
        causation_id=cause.id,
        data=data,
    )
