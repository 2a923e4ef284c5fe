"""Dead letters as tests look for them."""

from __future__ import annotations

from nats.js import JetStreamContext
from nats.js.api import RawStreamMsg
from nats.js.errors import NotFoundError

from schemas import subjects


async def stored_letter(js: JetStreamContext, subject: str) -> RawStreamMsg | None:
    """The last dead letter on `subject`, or None while there is none."""
    try:
        return await js.get_last_msg(subjects.DEAD_LETTER_STREAM, subject)
    except NotFoundError:
        return None
