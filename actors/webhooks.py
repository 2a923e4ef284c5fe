"""The webhooks actor: POSTs each job event to the webhooks its owner asked for it.

The body is the event's envelope as stored. Each request is signed:
`Conveyor-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + body>` with the
webhook's secret. A 2xx answer is a delivery. A timeout, a broken connection, 408,
425, 429 or 5xx is tried again (the event is nak'ed with a growing delay, or the
receiver's Retry-After); after `CONVEYOR_WEBHOOK_MAX_TRIES` the event is
dead-lettered. Any other answer (a redirect, a 4xx) or a host with no public address
is final for that webhook: logged, never retried. Webhooks already served are not
sent an event again when it comes back for another one's sake (while this process
remembers). Deliveries are at least once and not in order: receivers dedupe by
`Conveyor-Event-Id` and order by `Conveyor-Stream-Seq`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
import uuid
from collections.abc import Sequence
from datetime import datetime
from enum import Enum
from typing import ClassVar

import aiohttp
import structlog
from cachetools import TTLCache
from nats.errors import Error as NatsError
from nats.js.kv import KeyValue

from actors import webhook_store
from actors.destinations import NoPublicAddress, url_problem
from actors.errors import TransientError
from actors.runtime import Delivery
from schemas import subjects
from schemas.events import Envelope
from schemas.settings import Settings
from schemas.webhooks import Webhook

log = structlog.get_logger()

USER_AGENT = "conveyor-webhooks/1"
# An owner's webhooks are read again after this long, and whenever an event occurred
# after they were read (so a webhook made just before an event is never missed).
DIRECTORY_SECONDS = 1.0
# (event, webhook) pairs served, remembered this long.
SERVED_SECONDS = 24 * 3600.0
LONGEST_WAIT = 3600.0
_RETRY_STATUSES = frozenset({408, 425, 429})


class Outcome(Enum):
    SENT = "sent"
    FINAL = "final"  # refused for good: not tried again
    RETRY = "retry"


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The `Conveyor-Signature` header's value."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def _retry_after(value: str | None) -> float | None:
    if value is None or not value.strip().isdigit():
        return None  # an HTTP date is rare here; the actor's own delay then
    return float(value)


def _no_public_address(exc: BaseException) -> bool:
    while exc is not None:
        if isinstance(exc, NoPublicAddress) or isinstance(
            getattr(exc, "os_error", None), NoPublicAddress
        ):
            return True
        exc = exc.__cause__  # type: ignore[assignment]
    return False


class WebhooksActor:
    name: ClassVar[str] = "webhooks"
    confirm_ack: ClassVar[bool] = False
    fails_job: ClassVar[bool] = False
    batch: ClassVar[int] = 16
    # One slow receiver holds one slot, not the whole stream.
    concurrency: ClassVar[int] = 16

    def __init__(self, kv: KeyValue, session: aiohttp.ClientSession, settings: Settings) -> None:
        self._kv = kv
        self._session = session
        self._allow_private = settings.webhook_allow_private
        self._first_wait = settings.webhook_retry_seconds
        # Read by the runtime: tries before dead-lettering, this actor's own.
        self.max_deliver = settings.webhook_max_tries
        # Per owner: when the list was read (Unix time) and the list.
        self._directory: TTLCache[str, tuple[float, list[Webhook]]] = TTLCache(
            10_000, DIRECTORY_SECONDS
        )
        self._served: TTLCache[tuple[uuid.UUID, uuid.UUID], bool] = TTLCache(
            100_000, SERVED_SECONDS
        )

    async def _hooks(self, owner: str, occurred_at: datetime) -> list[Webhook]:
        """The owner's webhooks as they were when the event occurred, or later: a list
        read before then might lack one made just before the event."""
        cached = self._directory.get(owner)
        if cached is not None and cached[0] >= occurred_at.timestamp():
            return cached[1]
        read_at = time.time()
        try:
            hooks, _ = await webhook_store.read(self._kv, owner)
        except NatsError as exc:
            raise TransientError(f"webhooks store: {type(exc).__name__}: {exc}") from exc
        self._directory[owner] = (read_at, hooks)
        return hooks

    async def handle(self, event: Envelope, delivery: Delivery) -> Sequence[Envelope]:
        due = [
            hook
            for hook in await self._hooks(event.owner, event.occurred_at)
            # Not the events before it was made (a new consumer, or a replay, reads them).
            if event.type in hook.events
            and event.occurred_at >= hook.created_at
            and (event.id, hook.id) not in self._served
        ]
        if not due:
            return []
        outcomes = await asyncio.gather(*(self._send(hook, event, delivery) for hook in due))
        waits: list[float] = []
        for hook, (outcome, wait) in zip(due, outcomes, strict=True):
            if outcome is Outcome.RETRY:
                waits.append(wait if wait is not None else self._backoff(delivery))
            else:
                self._served[(event.id, hook.id)] = True
        if waits:
            raise TransientError(
                f"{len(waits)} of {len(due)} webhooks to be tried again",
                delay=min(max(waits), LONGEST_WAIT),
            )
        return []

    def _backoff(self, delivery: Delivery) -> float:
        wait: float = self._first_wait * 6.0 ** (delivery.num_delivered - 1)
        return min(wait, LONGEST_WAIT)

    async def _send(
        self, hook: Webhook, event: Envelope, delivery: Delivery
    ) -> tuple[Outcome, float | None]:
        bound = log.bind(webhook_id=str(hook.id), job_id=str(event.job_id), event=event.type)
        # Checked again at each try: the settings may have changed since it was made.
        problem = url_problem(hook.url, allow_private=self._allow_private)
        if problem is not None:
            bound.warning("webhook refused", reason=problem)
            return Outcome.FINAL, None
        body = delivery.data
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "Conveyor-Webhook-Id": str(hook.id),
            "Conveyor-Event-Id": str(event.id),
            "Conveyor-Event-Type": event.type,
            subjects.SEQ_HEADER: str(delivery.stream_seq),
            "Conveyor-Signature": signature(hook.secret, int(time.time()), body),
        }
        try:
            async with self._session.post(
                hook.url, data=body, headers=headers, allow_redirects=False
            ) as answer:
                status = answer.status
                retry_after = _retry_after(answer.headers.get("Retry-After"))
        except Exception as exc:
            if _no_public_address(exc):
                bound.warning("webhook refused", reason=str(exc))
                return Outcome.FINAL, None
            bound.warning("webhook not reached", error=f"{type(exc).__name__}: {exc}")
            return Outcome.RETRY, None
        if 200 <= status < 300:
            return Outcome.SENT, None
        if status >= 500 or status in _RETRY_STATUSES:
            bound.warning("webhook failed", status=status, retry_after=retry_after)
            return Outcome.RETRY, retry_after
        bound.warning("webhook refused the event", status=status)
        return Outcome.FINAL, None
