"""Dead letters: a message an actor gave up on, kept with why, for `conveyor dlq`."""

from __future__ import annotations

import uuid

from nats.js import JetStreamContext

from schemas import subjects

ORIGINAL_SUBJECT = "Conveyor-Original-Subject"
ORIGINAL_SEQ = "Conveyor-Original-Seq"
DELIVERED = "Conveyor-Delivered"
ACTOR = "Conveyor-Actor"
ERROR = "Conveyor-Error"


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
    out = dict(headers or {})
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
