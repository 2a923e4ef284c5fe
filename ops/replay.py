"""`conveyor replay`: re-apply the JOBS stream to Postgres, in stream order.

While it runs, live persistence processes stand down (their leases are paused),
so the two never interleave on a projection being rebuilt. Events are applied by
the persistence actor's own code, so a replay can not diverge from live work.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import asyncpg
import msgspec
import structlog
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from actors.collector import tune_collector
from actors.fetch import fetch_batch
from actors.leases import LEASE_REFRESH_SECONDS, Leases
from actors.ordered import in_order
from actors.persistence import PersistenceActor, Stored, positions
from ops.errors import OpsError
from schemas import subjects
from schemas.settings import Settings

log = structlog.get_logger("ops.replay")

# Events per fetch and per transaction: a rebuild COPies them, so bigger is cheaper.
BATCH = 2000
# Batches read ahead of the one being applied.
READ_AHEAD = 2
# Transactions applying one batch at once, each a share of the partitions (at most
# the pool's connections).
LANES = 2


class ReplayReport(msgspec.Struct, frozen=True, kw_only=True):
    read: int
    applied: int
    skipped: int
    dead: int
    seconds: float
    first_seq: int
    last_seq: int


async def rebuild_tables(pool: asyncpg.Pool[Any]) -> int:
    """Empty every projection of JOBS and start a new epoch; returns the epoch.

    One transaction: a live reader that outlived its lease either committed its
    batch before (and the rebuild redoes it) or finds the new epoch and stops.
    """
    async with pool.acquire() as conn, conn.transaction():
        epoch = await conn.fetchval(
            "UPDATE persistence_epoch SET epoch = epoch + 1 WHERE id = 1 RETURNING epoch"
        )
        await conn.execute("TRUNCATE jobs, job_events, watermarks")
    return int(epoch)


async def replay(
    js: JetStreamContext,
    pool: asyncpg.Pool[Any],
    actor: PersistenceActor,
    settings: Settings,
    *,
    from_seq: int | None = None,
    since: datetime | None = None,
    rebuild: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> ReplayReport:
    tune_collector()  # as live persistence does: millions of short-lived objects
    kv = await js.key_value(subjects.LEASES_BUCKET)
    leases = Leases(kv, actor.name, "replay", settings.partitions)
    await leases.pause()
    done = asyncio.Event()
    keeper = asyncio.create_task(_hold(leases, done))
    try:
        await _wait_for_all(leases, settings.partitions, keeper)
        if rebuild:
            first = (await js.stream_info(subjects.JOBS_STREAM)).state.first_seq
            if first > 1:
                # Events before `first` are gone (max age): emptying the tables would
                # lose those jobs for good.
                raise OpsError(
                    f"JOBS starts at sequence {first}: older events have expired, so a"
                    " rebuild would lose jobs. Restore Postgres from a backup, then replay"
                    " --from-seq."
                )
            epoch = await rebuild_tables(pool)
            from_seq, since = 1, None
        else:
            epoch = await actor.epoch()
        return await _apply(
            js,
            actor,
            epoch,
            from_seq=from_seq,
            since=since,
            progress=progress,
            # A partial replay re-applies what it reads but leaves the readers'
            # positions: moving a watermark past unread events would skip them.
            watermarks=rebuild,
        )
    finally:
        # Not cancelled: a renewal cut off after the server applied it would leave
        # us an old revision, and the release below would be refused.
        done.set()
        with contextlib.suppress(Exception):
            await keeper
        await leases.release_all()
        await leases.resume()


async def _hold(leases: Leases, done: asyncio.Event) -> None:
    """Renew the pause and our leases well inside the bucket TTL, until `done`."""
    while not done.is_set():
        await leases.pause()
        await leases.claim_all()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), LEASE_REFRESH_SECONDS / 2)


async def _wait_for_all(leases: Leases, partitions: int, keeper: asyncio.Task[None]) -> None:
    deadline = time.monotonic() + 30
    while len(leases.owned) < partitions:
        if keeper.done():
            keeper.result()
        if time.monotonic() > deadline:
            raise OpsError("live persistence did not hand over its partitions within 30 s")
        await asyncio.sleep(0.1)


async def _apply(
    js: JetStreamContext,
    actor: PersistenceActor,
    epoch: int,
    *,
    watermarks: bool,
    from_seq: int | None,
    since: datetime | None,
    progress: Callable[[int, int], None] | None,
) -> ReplayReport:
    info = await js.stream_info(subjects.JOBS_STREAM)
    last = info.state.last_seq
    start = max(from_seq or info.state.first_seq, info.state.first_seq)
    config = ConsumerConfig(
        deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
        opt_start_seq=start,
        ack_policy=AckPolicy.NONE,
        filter_subject=subjects.STORED_JOBS,
        inactive_threshold=30.0,
        mem_storage=True,
    )
    if since is not None:
        config.deliver_policy = DeliverPolicy.BY_START_TIME
        config.opt_start_seq = None
        config.opt_start_time = since
    sub = await js.pull_subscribe(subjects.STORED_JOBS, stream=subjects.JOBS_STREAM, config=config)
    read = applied = skipped = dead = 0
    first_seen = 0
    lanes = max(1, min(LANES, actor.connections))
    started = time.perf_counter()
    # Reading the next batch overlaps with applying this one (NATS and Python work
    # beside Postgres); order is kept: one reader, one applier, a FIFO between them.
    batches: asyncio.Queue[list[Stored] | Exception | None] = asyncio.Queue(maxsize=READ_AHEAD)

    async def reader(pending: int) -> None:
        expected = 1
        try:
            while pending:
                try:
                    msgs = await fetch_batch(sub, min(BATCH, pending), wait=5.0)
                except TimeoutError:
                    continue
                batch, gap = in_order(msgs, expected)
                if gap is not None:
                    raise OpsError(f"gap while replaying near stream sequence {gap}")
                expected += len(batch)
                pending = positions(msgs[-1])[2]  # what the server holds after these
                await batches.put(batch)
        except Exception as exc:
            await batches.put(exc)  # raised where the batches are applied
        else:
            await batches.put(None)

    reading: asyncio.Task[None] | None = None
    try:
        total = (await sub.consumer_info()).num_pending or 0
        reading = asyncio.create_task(reader(total))
        while (batch := await batches.get()) is not None:
            if isinstance(batch, Exception):
                raise batch
            if batch:
                first_seen = first_seen or batch[0].seq
                last = batch[-1].seq
            # Partitions share no job: their parts of a batch are applied side by side
            # (one transaction each, with their own watermarks), all before the next.
            parts: dict[int, list[Stored]] = {}
            for message in batch:
                lane = subjects.partition_of(message.subject) % lanes
                parts.setdefault(lane, []).append(message)
            for counts in await asyncio.gather(
                *(actor.apply_batch(p, epoch=epoch, watermarks=watermarks) for p in parts.values())
            ):
                applied += counts.applied
                skipped += counts.skipped
                dead += counts.dead
            read += len(batch)
            if progress is not None:
                progress(read, total)
    finally:
        if reading is not None:
            reading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reading
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
    return ReplayReport(
        read=read,
        applied=applied,
        skipped=skipped,
        dead=dead,
        seconds=round(time.perf_counter() - started, 3),
        first_seq=first_seen,
        last_seq=last if read else 0,
    )


def progress_printer() -> tuple[Callable[[int, int], None], Callable[[], None]]:
    """A rich progress bar on a terminal; plain lines every 2 s otherwise."""
    if sys.stderr.isatty():
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        bar = Progress(
            TextColumn("replay"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(),
            transient=True,
        )
        task = bar.add_task("replay", total=None, rate="")
        bar.start()
        begun = time.perf_counter()

        def tty(done: int, total: int) -> None:
            rate = done / max(time.perf_counter() - begun, 1e-9)
            bar.update(task, completed=done, total=total, rate=f"{rate:,.0f} events/s")

        return tty, bar.stop

    begun = time.perf_counter()
    last_line = 0.0

    def plain(done: int, total: int) -> None:
        nonlocal last_line
        now = time.perf_counter()
        if now - last_line < 2.0 and done < total:
            return
        last_line = now
        rate = done / max(now - begun, 1e-9)
        eta = (total - done) / rate if rate else 0.0
        print(f"replay {done}/{total} events, {rate:,.0f}/s, eta {eta:,.0f}s", flush=True)

    return plain, lambda: None
