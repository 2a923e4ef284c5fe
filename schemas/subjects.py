"""Every subject, stream, consumer and bucket name, in one place.

Events are published on `jobs.<job_id>.<type>`. The JOBS stream stores each one
as `jobs.<job_id>.<type>.<partition>`: a subject transform appends
`partition(N, job_id)`, so every event of one job lands in one partition and
persistence can apply partitions in parallel, each strictly in order. Core NATS
subscribers see the published subject, without the partition.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Final

JOBS_STREAM: Final = "JOBS"
JOBS_SUBJECTS: Final = "jobs.*.*"
STORED_JOBS: Final = "jobs.*.*.*"
"""Every event as stored: `jobs.<job_id>.<type>.<partition>` (see `stored_partition`)."""
DEAD_LETTER_STREAM: Final = "DEADLETTER"
DEAD_LETTER_SUBJECTS: Final = "dlq.>"
UPLOADS_BUCKET: Final = "uploads"
# Answers to POSTs that carried an Idempotency-Key.
IDEMPOTENCY_BUCKET: Final = "idempotency"
# Leases on persistence partitions and the members sharing them.
LEASES_BUCKET: Final = "leases"
# Each owner's webhooks (schemas.webhooks).
WEBHOOKS_BUCKET: Final = "webhooks"

# Core NATS (not stored): the notification actor relays job events here for
# WebSocket listeners in any gateway process.
NOTIFY_PREFIX: Final = "notify.jobs"
# ... and once more per owner, for WS /v1/events.
NOTIFY_OWNERS_PREFIX: Final = "notify.owners"

# NATS's own subject prefixes, which permissions (ops.nats_auth) are written in.
JS_API: Final = "$JS.API"
JS_ACK: Final = "$JS.ACK"
JS_FLOW_CONTROL: Final = "$JS.FC"
KV_PREFIX: Final = "$KV"
KV_STREAM_PREFIX: Final = "KV_"
UPLOADS_STREAM: Final = f"{KV_STREAM_PREFIX}{UPLOADS_BUCKET}"


def upload_record(upload_id: str) -> str:
    """Where the uploads bucket stores an upload's record (its key is the upload id)."""
    return f"{KV_PREFIX}.{UPLOADS_BUCKET}.{upload_id}"


def msg_get(stream: str) -> str:
    """JetStream's API request for one message of `stream`, by sequence or subject (its
    answer is JSON, the message base64 in it); the stream's leader answers."""
    return f"{JS_API}.STREAM.MSG.GET.{stream}"


def direct_get(stream: str, subject: str) -> str:
    """Asks `stream` for its last message on `subject` by JetStream's direct get: the
    message as stored, not wrapped in the API's JSON. Only a stream that allows direct
    gets answers, and then any of its replicas may."""
    return f"{JS_API}.DIRECT.GET.{stream}.{subject}"


def inbox_prefix(user: str) -> str:
    """Where NATS user `user`'s replies arrive: its own prefix, not the shared `_INBOX`."""
    return f"_INBOX_{user}"


# Header on relayed events: the stream sequence of the original.
SEQ_HEADER: Final = "Conveyor-Stream-Seq"
MSG_ID_HEADER: Final = "Nats-Msg-Id"


def partition_transform(partitions: int) -> tuple[str, str]:
    """(source, destination) of the JOBS stream's subject transform."""
    return (
        JOBS_SUBJECTS,
        f"jobs.{{{{wildcard(1)}}}}.{{{{wildcard(2)}}}}.{{{{partition({partitions},1)}}}}",
    )


def job_event(job_id: uuid.UUID | str, event_type: str) -> str:
    """Where an event is published (and what core subscribers see)."""
    return f"jobs.{job_id}.{event_type}"


def stored_job_event(job_id: uuid.UUID | str, event_type: str) -> str:
    """Filter for one event type of one job as stored in JOBS (any partition)."""
    return f"jobs.{job_id}.{event_type}.*"


def stored_job_events(job_id: uuid.UUID | str) -> str:
    """Filter for every stored event of one job."""
    return f"jobs.{job_id}.*.*"


def stored_partition(partition: int) -> str:
    """Filter for every stored event of one partition."""
    return f"jobs.*.*.{partition}"


def published_subject(stored: str) -> str:
    """`jobs.<id>.<type>` from a stored `jobs.<id>.<type>.<partition>`."""
    return stored.rsplit(".", 1)[0] if stored.count(".") == 3 else stored


def partition_of(stored: str) -> int:
    """The partition from a stored `jobs.<id>.<type>.<partition>`."""
    return int(stored.rsplit(".", 1)[1])


def event_type_of(subject: str) -> str:
    """The event type from a published or stored subject."""
    return subject.split(".")[2]


def notify_job(job_id: uuid.UUID | str, event_type: str) -> str:
    return f"{NOTIFY_PREFIX}.{job_id}.{event_type}"


def notify_job_all(job_id: uuid.UUID | str) -> str:
    return f"{NOTIFY_PREFIX}.{job_id}.*"


def owner_key(owner: str) -> str:
    """A subject token for `owner`: a JWT `sub` may hold `.`, `*`, `>` or spaces, which
    a subject can not. 128 bits of BLAKE2b; listeners still check the envelope's owner."""
    return hashlib.blake2b(owner.encode(), digest_size=16).hexdigest()


def notify_owner(owner: str) -> str:
    return f"{NOTIFY_OWNERS_PREFIX}.{owner_key(owner)}"


NOTIFY_JOBS_ALL: Final = f"{NOTIFY_PREFIX}.>"
NOTIFY_OWNERS_ALL: Final = f"{NOTIFY_OWNERS_PREFIX}.*"
"""Every relay per job, and every owner's feed (what permissions are written in)."""


def dead_letter(actor: str, job_id: uuid.UUID | str | None) -> str:
    return f"dlq.{actor}.{job_id or 'unknown'}"


def partition_lease(actor: str, partition: int) -> str:
    return f"{actor}.partition.{partition}"


def member_lease(actor: str, member: str) -> str:
    return f"{actor}.member.{member}"


def pause_lease(actor: str) -> str:
    return f"{actor}.paused"


# Durable consumers on JOBS, each with the stored subjects it takes. Persistence
# has none: it reads each partition with an ordered consumer from its watermark.
UPLOAD_CONSUMER: Final = "upload"
PROCESSING_CONSUMER: Final = "processing"
NOTIFICATION_CONSUMER: Final = "notification"
WEBHOOKS_CONSUMER: Final = "webhooks"
PERSISTENCE: Final = "persistence"

CONSUMER_FILTERS: Final[dict[str, str]] = {
    UPLOAD_CONSUMER: "jobs.*.uploaded.*",
    PROCESSING_CONSUMER: "jobs.*.verified.*",
    NOTIFICATION_CONSUMER: STORED_JOBS,
    WEBHOOKS_CONSUMER: STORED_JOBS,
}
