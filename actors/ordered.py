"""The ordered runtime: applies JOBS partition by partition, each strictly in order.

Used by persistence, whose position lives in Postgres (the watermark) rather than
in consumer acks. For each partition it holds a lease on, it reads the stream
from the watermark with an ephemeral, ack-less consumer filtered to that
partition, checks the consumer sequence has no gap, and hands batches to the
actor, which commits them with the new watermark. Any doubt (a gap, a consumer
lost in a server restart, a stall) is answered the same way: drop the consumer
and start again from the watermark. Several processes share the partitions
through `actors.leases`; parallelism comes from spreading jobs, never from
reordering one job.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import structlog
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from actors.collector import tune_collector
from actors.errors import TransientError
from actors.fetch import fetch_batch
from actors.leases import LEASE_REFRESH_SECONDS, Leases, member_id
from actors.persistence import PersistenceActor, Stored, positions
from actors.publisher import REQUEST_ID_HEADER
from schemas import subjects
from schemas.settings import Settings

log = structlog.get_logger("actors.ordered")

# After this long without a message, ask the server whether the consumer still
# exists and has nothing pending; if not, re-create it (nats.py can stall after a
# server restart without raising).
WATCHDOG_SECONDS = 5.0
# Events per fetch, and so at most per Postgres transaction. Big batches spread a
# transaction's fixed cost when a backlog waits (a restart, an outage, a replay);
# under a light load a fetch brings what is there and does not wait for more.
BATCH = 1024


def in_order(msgs: list[Msg], expected: int) -> tuple[list[Stored], int | None]:
    """The messages up to the first whose consumer sequence is not the next one
    from `expected` (a message lost between them), and that one's stream sequence
    if there is such a gap, else None."""
    batch: list[Stored] = []
    for msg in msgs:
        seq, consumer_seq, _ = positions(msg)
        if consumer_seq != expected + len(batch):
            return batch, seq
        batch.append(Stored.of(msg, seq))
    return batch, None


class OrderedRuntime:
    def __init__(
        self,
        actor: PersistenceActor,
        js: JetStreamContext,
        settings: Settings,
    ) -> None:
        self.actor = actor
        self._js = js
        self._settings = settings
        self._member = member_id()
        self.applied = 0

    async def run(self, stop: asyncio.Event) -> None:
        tune_collector()
        kv = await self._js.key_value(subjects.LEASES_BUCKET)
        leases = Leases(kv, self.actor.name, self._member, self._settings.partitions)
        workers: dict[int, tuple[asyncio.Task[None], asyncio.Event]] = {}
        log.info("actor started", actor=self.actor.name, member=self._member)
        try:
            while not stop.is_set():
                try:
                    owned = await leases.refresh()
                except Exception as exc:
                    # NATS away: keep what we have. If the leases lapse meanwhile, a
                    # second reader of a partition is harmless (idempotent apply), and
                    # a rebuild fences us off (see PersistenceActor.epoch).
                    log.warning("lease refresh failed", error=repr(exc))
                    owned = set(workers)
                for partition in owned - set(workers):
                    halt = asyncio.Event()
                    task = asyncio.create_task(self._work(partition, halt))
                    workers[partition] = (task, halt)
                for partition in set(workers) - owned:
                    await self._halt(workers.pop(partition))
                # Only now, with no batch of theirs in flight, may others take them.
                with contextlib.suppress(Exception):
                    await leases.release_surplus()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), LEASE_REFRESH_SECONDS)
        finally:
            # Each worker finishes the batch it is applying, then stops.
            await asyncio.gather(*(self._halt(w) for w in workers.values()))
            with contextlib.suppress(Exception):
                await leases.release_all()
            log.info("actor stopped", actor=self.actor.name, applied=self.applied)

    @staticmethod
    async def _halt(worker: tuple[asyncio.Task[None], asyncio.Event]) -> None:
        task, halt = worker
        halt.set()
        with contextlib.suppress(Exception):
            await task

    async def _work(self, partition: int, halt: asyncio.Event) -> None:
        while not halt.is_set():
            try:
                epoch = await self.actor.epoch()
                start = await self.actor.watermark(partition)
                await self._consume(partition, start, epoch, halt)
            except Exception as exc:
                log.warning("partition reader restarting", partition=partition, error=repr(exc))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(halt.wait(), 1.0)

    async def _consume(self, partition: int, after: int, epoch: int, halt: asyncio.Event) -> None:
        """Read the partition from `after + 1` until halted or in doubt."""
        config = ConsumerConfig(
            filter_subject=subjects.stored_partition(partition),
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE if after else DeliverPolicy.ALL,
            opt_start_seq=after + 1 if after else None,
            ack_policy=AckPolicy.NONE,
            # Ephemeral: the server removes it soon after we stop asking.
            inactive_threshold=30.0,
            mem_storage=True,
            num_replicas=1,
        )
        sub = await self._js.pull_subscribe(
            subjects.stored_partition(partition), stream=subjects.JOBS_STREAM, config=config
        )
        expected = 1  # the consumer sequence of the next message: a gap means a loss
        idle_since = time.monotonic()
        try:
            while not halt.is_set():
                try:
                    msgs = await fetch_batch(sub, BATCH, wait=1.0)
                except TimeoutError:
                    if time.monotonic() - idle_since > WATCHDOG_SECONDS:
                        info = await sub.consumer_info()  # NotFoundError: it is gone
                        if info.num_pending:
                            log.warning("stalled partition reader", partition=partition)
                            return
                        idle_since = time.monotonic()
                    continue
                idle_since = time.monotonic()
                batch, gap = in_order(msgs, expected)
                expected += len(batch)
                if not await self._apply(batch, partition, epoch, halt):
                    return
                if gap is not None:
                    log.warning("gap in partition reader; restarting", partition=partition)
                    return
        except NotFoundError:
            log.warning("partition consumer vanished; restarting", partition=partition)
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def _apply(
        self, batch: list[Stored], partition: int, epoch: int, halt: asyncio.Event
    ) -> bool:
        """Apply, retrying in place while Postgres is away; False if halted meanwhile."""
        attempt = 0
        started = time.perf_counter()
        while True:
            try:
                counts = await self.actor.apply_batch(batch, epoch=epoch)
                break
            except TransientError as exc:
                attempt += 1
                log.warning("retrying batch", partition=partition, reason=exc.reason)
                if halt.is_set():
                    return False  # nothing committed; the watermark says where to resume
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(halt.wait(), min(0.2 * 2**attempt, 5.0))
        self.applied += counts.applied
        if batch:
            log.info(
                "handled",
                actor=self.actor.name,
                partition=partition,
                first_seq=batch[0].seq,
                last_seq=batch[-1].seq,
                applied=counts.applied,
                skipped=counts.skipped,
                dead=counts.dead,
                ms=round((time.perf_counter() - started) * 1000, 2),
                # The requests whose events this batch applied.
                request_ids=sorted(
                    {r for m in batch if (r := (m.headers or {}).get(REQUEST_ID_HEADER))}
                ),
            )
        return True
