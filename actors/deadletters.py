"""Dead letters: a message an actor gave up on, kept with why, for `conveyor dlq`."""

from __future__ import annotations

import contextlib
import uuid

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from actors.publisher import Publisher
from schemas import subjects
from schemas.events import TERMINAL, Envelope, Failed, follow_up

ORIGINAL_SUBJECT = "Conveyor-Original-Subject"
ORIGINAL_SEQ = "Conveyor-Original-Seq"
DELIVERED = "Conveyor-Delivered"
ACTOR = "Conveyor-Actor"
ERROR = "Conveyor-Error"


# Headers that are conditions on a publish (`Nats-Expected-Last-Subject-Sequence` on
# `uploaded`, ...), not facts about the event: JetStream stores them with it, and
# sent again with a copy (to DEADLETTER, or back to JOBS) they would refuse it.
_PRECONDITION = "Nats-Expected-"


# What `dead_letter` adds to the event's own headers.
_ADDED = frozenset(
    {ORIGINAL_SUBJECT, ORIGINAL_SEQ, DELIVERED, ACTOR, ERROR, subjects.MSG_ID_HEADER}
)


def _without_preconditions(headers: dict[str, str] | None) -> dict[str, str]:
    """A stored event's headers, without its publish's preconditions."""
    return {k: v for k, v in (headers or {}).items() if not k.startswith(_PRECONDITION)}


def original_headers(headers: dict[str, str] | None) -> dict[str, str]:
    """A dead letter's headers without what `dead_letter` added: the event's own."""
    return {k: v for k, v in _without_preconditions(headers).items() if k not in _ADDED}


async def dead_letter(
    js: JetStreamContext,
    *,
    actor: str,
    stored_subject: str,
    stream_seq: int,
    delivered: int,
    data: bytes,
    headers: dict[str, str] | None,
    reason: str,
    job_id: uuid.UUID | None,
) -> None:
    """Store the original payload and headers with the error; once per (actor, message)."""
    out = _without_preconditions(headers)
    out.update(
        {
            # The published subject, without the partition: where a retry goes.
            ORIGINAL_SUBJECT: subjects.published_subject(stored_subject),
            ORIGINAL_SEQ: str(stream_seq),
            DELIVERED: str(delivered),
            ACTOR: actor,
            ERROR: reason[:1000],
            subjects.MSG_ID_HEADER: f"{actor}:{stream_seq}",
        }
    )
    await js.publish(
        subjects.dead_letter(actor, job_id),
        data,
        stream=subjects.DEAD_LETTER_STREAM,
        headers=out,
    )


async def fail_job(
    js: JetStreamContext, publisher: Publisher, event: Envelope, failed: Failed, *, source: str
) -> None:
    """Publish `failed` for `event`'s job, unless the job has already ended: an earlier
    try may have succeeded and only its ack been lost, or a later event finished the job;
    a late `failed` must not overturn that."""
    if event.type in TERMINAL or await _finished(js, event.job_id):
        return
    await publisher.publish(follow_up(event, failed, source=source))


async def _finished(js: JetStreamContext, job_id: uuid.UUID) -> bool:
    for kind in TERMINAL:
        with contextlib.suppress(NotFoundError):
            await js.get_last_msg(subjects.JOBS_STREAM, subjects.stored_job_event(job_id, kind))
            return True
    return False
