"""The notification actor: relays each job event to core NATS for live listeners.

Each event goes out twice: on `notify.jobs.<job_id>.<type>` for the job's WebSockets,
and on `notify.owners.<owner key>` for its owner's feed (WS /v1/events), in any
gateway process. Both carry the stream sequence, so a listener can merge them with
history. One replica relays in stream order (its consumer hands it one event at a
time).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from nats.aio.client import Client as NATS

from actors.runtime import Delivery
from schemas import subjects
from schemas.events import Envelope


class NotificationActor:
    name: ClassVar[str] = "notification"
    confirm_ack: ClassVar[bool] = False
    batch: ClassVar[int] = 64
    fails_job: ClassVar[bool] = False

    def __init__(self, nc: NATS) -> None:
        self._nc = nc

    async def handle(self, event: Envelope, delivery: Delivery) -> Sequence[Envelope]:
        headers = {subjects.SEQ_HEADER: str(delivery.stream_seq)}
        await self._nc.publish(
            subjects.notify_job(event.job_id, event.type), delivery.data, headers=headers
        )
        await self._nc.publish(subjects.notify_owner(event.owner), delivery.data, headers=headers)
        # No flush: the ack goes out on this same connection after the relay, and NATS keeps
        # one connection's messages in order, so it can never overtake it.
        return []
