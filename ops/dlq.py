"""`conveyor dlq`: look at, requeue and purge dead letters."""

from __future__ import annotations

from collections.abc import AsyncIterator

from nats.js import JetStreamContext
from nats.js.api import RawStreamMsg
from nats.js.errors import NotFoundError

from actors import deadletters as dl
from ops.errors import OpsError
from schemas import subjects
from schemas.ops import DeadLetterView


def view(msg: RawStreamMsg) -> DeadLetterView:
    headers = msg.headers or {}
    return DeadLetterView(
        seq=msg.seq or 0,
        subject=msg.subject or "",
        actor=headers.get(dl.ACTOR, ""),
        original_subject=headers.get(dl.ORIGINAL_SUBJECT, ""),
        original_seq=int(headers.get(dl.ORIGINAL_SEQ, "0") or 0),
        delivered=int(headers.get(dl.DELIVERED, "0") or 0),
        error=headers.get(dl.ERROR, ""),
    )


async def letters(js: JetStreamContext, *, limit: int | None = None) -> AsyncIterator[RawStreamMsg]:
    seq, count = 0, 0
    while limit is None or count < limit:
        try:
            msg = await js.get_msg(
                subjects.DEAD_LETTER_STREAM,
                seq=seq + 1,
                subject=subjects.DEAD_LETTER_SUBJECTS,
                next=True,
            )
        except NotFoundError:
            return
        seq = msg.seq or seq + 1
        count += 1
        yield msg


async def get(js: JetStreamContext, seq: int) -> RawStreamMsg:
    try:
        return await js.get_msg(subjects.DEAD_LETTER_STREAM, seq=seq)
    except NotFoundError:
        raise OpsError(f"no dead letter at sequence {seq}") from None


async def retry(js: JetStreamContext, seq: int) -> int:
    """Republish the dead letter at `seq`; see `republish`."""
    return await republish(js, await get(js, seq))


async def republish(js: JetStreamContext, msg: RawStreamMsg) -> int:
    """Republish a dead letter to its original subject; remove it. Returns the new sequence."""
    seq = msg.seq or 0
    if (msg.headers or {}).get(dl.ACTOR) == subjects.PERSISTENCE:
        # Postgres refused that event as it is; republished, it would be refused
        # again, or applied out of its place in the job's history.
        raise OpsError(
            f"dead letter {seq} was refused by Postgres: fix the data and replay, or purge it"
        )
    headers = dl.original_headers(msg.headers)
    original = (msg.headers or {}).get(dl.ORIGINAL_SUBJECT)
    if not original:
        raise OpsError(f"dead letter {seq} has no original subject")
    # A fresh message id: the original one may still be inside the dedupe window.
    headers[subjects.MSG_ID_HEADER] = f"retry:{subjects.DEAD_LETTER_STREAM}:{seq}"
    # As the Publisher stores events: no `Nats-Expected-Stream` (see `event_headers`).
    ack = await js.publish(original, msg.data or b"", headers=headers)
    await js.delete_msg(subjects.DEAD_LETTER_STREAM, seq)
    return ack.seq


async def purge(js: JetStreamContext, seq: int | None = None) -> int:
    """Delete one dead letter, or all of them; returns how many went."""
    if seq is not None:
        await get(js, seq)
        await js.delete_msg(subjects.DEAD_LETTER_STREAM, seq)
        return 1
    before = (await js.stream_info(subjects.DEAD_LETTER_STREAM)).state.messages
    await js.purge_stream(subjects.DEAD_LETTER_STREAM)
    return before
