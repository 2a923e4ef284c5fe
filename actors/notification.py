"""The notification actor: relays each job event to core NATS for live listeners.

WebSocket handlers in any gateway process subscribe to `notify.jobs.<job_id>.*`;
the relay carries the stream sequence so a listener can merge it with history.
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
        await self._nc.publish(
            subjects.notify_job(event.job_id, event.type),
            delivery.data,
            headers={subjects.SEQ_HEADER: str(delivery.stream_seq)},
        )
        # No flush: the ack goes out on this same connection after the relay, and NATS keeps
        # one connection's messages in order, so it can never overtake it.
        return []
