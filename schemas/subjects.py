"""Every subject, stream, consumer and bucket name, in one place."""

from __future__ import annotations

import uuid
from typing import Final

JOBS_STREAM: Final = "JOBS"
JOBS_SUBJECTS: Final = "jobs.*.*"
DEAD_LETTER_STREAM: Final = "DEADLETTER"
DEAD_LETTER_SUBJECTS: Final = "dlq.>"
UPLOADS_BUCKET: Final = "uploads"

# Core NATS (not stored): the notification actor relays job events here for
# WebSocket listeners in any gateway process.
NOTIFY_PREFIX: Final = "notify.jobs"

# Header on relayed events: the stream sequence of the original, for de-duplication.
SEQ_HEADER: Final = "Conveyor-Stream-Seq"
MSG_ID_HEADER: Final = "Nats-Msg-Id"


def job_event(job_id: uuid.UUID | str, event_type: str) -> str:
    return f"jobs.{job_id}.{event_type}"


def job_events(job_id: uuid.UUID | str) -> str:
    """Wildcard for every event of one job."""
    return f"jobs.{job_id}.*"


def notify_job(job_id: uuid.UUID | str, event_type: str) -> str:
    return f"{NOTIFY_PREFIX}.{job_id}.{event_type}"


def notify_job_all(job_id: uuid.UUID | str) -> str:
    return f"{NOTIFY_PREFIX}.{job_id}.*"


def dead_letter(actor: str, job_id: uuid.UUID | str | None) -> str:
    return f"dlq.{actor}.{job_id or 'unknown'}"


# Durable consumer of each actor on JOBS and the event types it takes.
UPLOAD_CONSUMER: Final = "upload"
PROCESSING_CONSUMER: Final = "processing"
PERSISTENCE_CONSUMER: Final = "persistence"
NOTIFICATION_CONSUMER: Final = "notification"

CONSUMER_FILTERS: Final[dict[str, str]] = {
    UPLOAD_CONSUMER: "jobs.*.uploaded",
    PROCESSING_CONSUMER: "jobs.*.verified",
    PERSISTENCE_CONSUMER: JOBS_SUBJECTS,
    NOTIFICATION_CONSUMER: JOBS_SUBJECTS,
}
