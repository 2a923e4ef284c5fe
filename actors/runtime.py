"""The runtime that runs any actor: fetch, decode, handle, publish follow-ups, ack.

An actor module holds only its logic (an `Actor`); this module owns delivery:
acks after the effect, naks with a delay on transient errors, dead letters on
permanent ones or after `max_deliver` tries, progress signals for long work,
and a drain on shutdown that leaves unfinished messages unacked.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from typing import Any, ClassVar, Protocol

import msgspec
import structlog
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from actors.deadletters import dead_letter, fail_job
from actors.errors import BadFile, PermanentError, TransientError
from actors.publisher import REQUEST_ID_HEADER, Publisher
from schemas import subjects
from schemas.events import Envelope, Failed
from schemas.settings import Settings

log = structlog.get_logger("actors.runtime")

# Idle this long while the consumer has messages pending: re-create the subscription.
WATCHDOG_SECONDS = 10.0
# A fetch waits this long for messages before the loop looks at `stop` again.
FETCH_SECONDS = 1.0


class Delivery(msgspec.Struct, frozen=True, kw_only=True):
    """Where a message came from, for handlers that need more than the event."""

    subject: str
    stream_seq: int
    num_delivered: int
    data: bytes


class Actor(Protocol):
    """One actor's logic. `handle` returns the events its effect causes.

    It must be idempotent: the same message may arrive again after a crash.
    """

    name: ClassVar[str]
    # Confirm the ack with the server: for effects where a lost ack costs a re-apply.
    confirm_ack: ClassVar[bool]
    # After dead-lettering, publish `failed` for the job (pipeline stages do; observers don't).
    fails_job: ClassVar[bool]
    # Messages per fetch. Only the one being handled is kept alive with in_progress,
    # so actors with long work take one at a time and leave the rest to other replicas.
    batch: ClassVar[int]
    # Optional `concurrency: ClassVar[int]` (default 1): messages handled at once, each
    # with its own progress signal and ack. Only for actors whose messages carry no
    # order among themselves (one event type per job).

    async def handle(self, event: Envelope, delivery: Delivery) -> Sequence[Envelope]: ...


class Runtime:
    """Runs one actor on its durable consumer until `stop` is set."""

    def __init__(
        self,
        actor: Actor,
        js: JetStreamContext,
        publisher: Publisher,
        settings: Settings,
    ) -> None:
        self.actor = actor
        self._js = js
        self._publisher = publisher
        self._settings = settings
        self._decoder = msgspec.json.Decoder(Envelope)
        self.handled = 0
        # The runtime, not the server, counts tries: consumers redeliver without
        # limit, so a message whose worker died on its last try comes back here
        # and is dead-lettered, instead of being silently abandoned by the server.
        # An actor may set its own (`max_deliver`, e.g. webhooks, whose receivers may be
        # down for hours).
        self._max_deliver = int(getattr(actor, "max_deliver", settings.max_deliver))
        self._ack_wait = settings.ack_wait_seconds
        # Messages handled at once (each acked on its own); 1 unless the actor says more.
        self._concurrency = max(1, int(getattr(actor, "concurrency", 1)))

    async def run(self, stop: asyncio.Event) -> None:
        """Fetch and handle until `stop`; then hand back what was fetched but not started."""
        name = self.actor.name
        sub = await self._js.pull_subscribe_bind(durable=name, stream=subjects.JOBS_STREAM)
        # Progress signals must come well inside the consumer's own ack wait.
        ack_wait = (await sub.consumer_info()).config.ack_wait
        self._ack_wait = ack_wait if ack_wait else self._settings.ack_wait_seconds
        log.info(
            "actor started", actor=name, max_deliver=self._max_deliver, ack_wait=self._ack_wait
        )
        idle_since = time.monotonic()
        # Messages being handled now, each with its own progress signal: at most
        # `concurrency` of them, and only as many are fetched as there are free slots,
        # so nothing fetched waits unstarted (and unprotected) behind a long one.
        in_flight: set[asyncio.Task[None]] = set()
        try:
            while not stop.is_set():
                # One at a time: a whole batch is fetched and handled in turn.
                free = self._concurrency - len(in_flight) if self._concurrency > 1 else 1 << 30
                if free <= 0:
                    await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                    continue
                try:
                    size = min(self.actor.batch, free)
                    msgs = await sub.fetch(size, timeout=FETCH_SECONDS)
                except TimeoutError:
                    # nats-py raises its own TimeoutError or asyncio's, depending on
                    # where the deadline passed; both mean "nothing to do", unless the
                    # subscription stalled (nats.py can, after a server restart).
                    if in_flight:
                        idle_since = time.monotonic()
                    if time.monotonic() - idle_since > WATCHDOG_SECONDS:
                        idle_since = time.monotonic()
                        if await self._stalled(sub):
                            log.warning("stalled subscription; re-creating it", actor=name)
                            with contextlib.suppress(Exception):
                                await sub.unsubscribe()
                            sub = await self._js.pull_subscribe_bind(
                                durable=name, stream=subjects.JOBS_STREAM
                            )
                    continue
                except Exception:
                    # A broken connection or a server restart: the client reconnects
                    # by itself; keep asking, a little slower, rather than die.
                    log.exception("fetch failed", actor=name)
                    await asyncio.sleep(1.0)
                    continue
                idle_since = time.monotonic()
                for index, msg in enumerate(msgs):
                    if stop.is_set():
                        # Not started: give them back now rather than after ack_wait.
                        for rest in msgs[index:]:
                            with contextlib.suppress(Exception):
                                await rest.nak()
                        break
                    if self._concurrency == 1:
                        await self.process(msg)
                    else:
                        task = asyncio.create_task(self.process(msg))
                        in_flight.add(task)
                        task.add_done_callback(in_flight.discard)
        except asyncio.CancelledError:
            # The shutdown deadline passed: what is still running is cut off, unacked.
            for task in in_flight:
                task.cancel()
            raise
        finally:
            # Started work finishes (and is acked) before we let go of the subscription.
            if in_flight:
                await asyncio.gather(*in_flight, return_exceptions=True)
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
            log.info("actor stopped", actor=name, handled=self.handled)

    @staticmethod
    async def _stalled(sub: JetStreamContext.PullSubscription) -> bool:
        """Messages wait for this consumer, yet our fetches bring none."""
        try:
            info = await sub.consumer_info()
        except Exception:
            return False  # NATS itself is away: reconnecting is the client's job
        # At max_ack_pending nothing can be delivered to anyone: that is not a stall.
        limit = info.config.max_ack_pending or 0
        return bool(info.num_pending) and (limit <= 0 or (info.num_ack_pending or 0) < limit)

    async def process(self, msg: Msg) -> None:
        # Every line logged while handling it, here or deeper down, names the request
        # that caused it.
        request_id = (msg.headers or {}).get(REQUEST_ID_HEADER)
        with structlog.contextvars.bound_contextvars(actor=self.actor.name, request_id=request_id):
            await self._process(msg)

    async def _process(self, msg: Msg) -> None:
        meta = msg.metadata
        delivery = Delivery(
            subject=msg.subject,
            stream_seq=meta.sequence.stream,
            num_delivered=meta.num_delivered,
            data=msg.data,
        )
        bound = log.bind(
            subject=msg.subject, seq=delivery.stream_seq, delivered=delivery.num_delivered
        )
        started = time.perf_counter()
        try:
            event = self._decoder.decode(msg.data)
        except msgspec.DecodeError as exc:
            try:
                await self._dead_letter(msg, delivery, None, f"undecodable message: {exc}")
                await msg.term()
            except Exception as nats_exc:
                bound.warning("dead letter failed; left for redelivery", error=str(nats_exc))
                return
            bound.error("dead-lettered", reason=str(exc))
            return
        bound = bound.bind(job_id=str(event.job_id), event=event.type)
        if delivery.num_delivered > self._max_deliver:
            # Every earlier try ended without an answer: the worker died or hung.
            reason = f"no answer after {delivery.num_delivered - 1} tries (worker died or hung)"
            try:
                outcome = await self._give_up(msg, event, delivery, reason)
            except Exception as exc:
                outcome = f"left for redelivery: {type(exc).__name__}: {exc}"
            bound.warning("handled", outcome=outcome)
            return
        heartbeat = asyncio.create_task(self._keep_alive(msg))
        try:
            outcome = await self._handle(msg, event, delivery)
        except Exception as exc:
            # The ack, nak or dead letter itself failed (NATS away): the message stays
            # unacked and comes back after ack_wait; every effect is idempotent.
            outcome = f"left for redelivery: {type(exc).__name__}: {exc}"
        finally:
            heartbeat.cancel()
        self.handled += 1
        ms = round((time.perf_counter() - started) * 1000, 2)
        if outcome != "ok":
            bound.warning("handled", outcome=outcome, ms=ms)
        else:
            bound.info("handled", outcome=outcome, ms=ms)

    async def _handle(self, msg: Msg, event: Envelope, delivery: Delivery) -> str:
        try:
            for out in await self.actor.handle(event, delivery):
                await self._publisher.publish(out)
        except (PermanentError, BadFile) as exc:
            # BadFile here means the actor did not turn it into an event itself.
            return await self._give_up(msg, event, delivery, exc.reason)
        except TransientError as exc:
            return await self._retry_or_give_up(msg, event, delivery, exc.reason, exc.delay)
        except Exception as exc:
            # Unexpected: maybe a bug, maybe the world. Retried, up to max_deliver.
            log.exception("handler raised", actor=self.actor.name, job_id=str(event.job_id))
            reason = f"{type(exc).__name__}: {exc}"
            return await self._retry_or_give_up(msg, event, delivery, reason, None)
        if self.actor.confirm_ack:
            await msg.ack_sync()
        else:
            await msg.ack()
        return "ok"

    async def _retry_or_give_up(
        self, msg: Msg, event: Envelope, delivery: Delivery, reason: str, delay: float | None
    ) -> str:
        if delivery.num_delivered >= self._max_deliver:
            return await self._give_up(
                msg, event, delivery, f"{reason} (gave up after {delivery.num_delivered} tries)"
            )
        # Exponential, capped: a down server gets time to come back.
        wait = delay if delay is not None else min(2.0 ** (delivery.num_delivered - 1), 30.0)
        await msg.nak(delay=wait)
        return f"retry in {wait:.1f}s: {reason}"

    async def _give_up(self, msg: Msg, event: Envelope, delivery: Delivery, reason: str) -> str:
        await self._dead_letter(msg, delivery, event, reason)
        if self.actor.fails_job:
            failed = Failed(reason=reason, stage=self.actor.name)
            await fail_job(self._js, self._publisher, event, failed, source="runtime")
        await msg.term()
        return f"dead-lettered: {reason}"

    async def _dead_letter(
        self, msg: Msg, delivery: Delivery, event: Envelope | None, reason: str
    ) -> None:
        await dead_letter(
            self._js,
            actor=self.actor.name,
            stored_subject=delivery.subject,
            stream_seq=delivery.stream_seq,
            delivered=delivery.num_delivered,
            data=msg.data,
            headers=msg.headers,
            reason=reason,
            job_id=event.job_id if event is not None else None,
        )

    async def _keep_alive(self, msg: Msg) -> None:
        # Well inside ack_wait, so long work is not redelivered to a second worker.
        interval = max(self._ack_wait / 3, 0.2)
        while True:
            await asyncio.sleep(interval)
            with contextlib.suppress(Exception):
                await msg.in_progress()


class Runnable(Protocol):
    actor: Any

    async def run(self, stop: asyncio.Event) -> None: ...


async def run_until_stopped(runtime: Runnable, stop: asyncio.Event, grace: float) -> None:
    """Run `runtime`; once `stop` is set, let in-flight work finish within `grace` seconds.

    What is still running after that is cancelled: its transaction rolls back and
    its message, unacked, is redelivered. Nothing is half-applied.
    """
    task = asyncio.create_task(runtime.run(stop), name=f"actor:{runtime.actor.name}")
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        stopped.cancel()
        task.result()
        return
    try:
        await asyncio.wait_for(task, timeout=grace)
    except TimeoutError:
        log.warning("in-flight work cancelled at shutdown deadline", actor=runtime.actor.name)
