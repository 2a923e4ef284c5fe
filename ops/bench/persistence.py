"""`conveyor bench persistence`: events applied per second by the persistence actor
from a pre-filled JOBS stream, against a bare asyncpg `copy_records_to_table` of the
same rows into empty copies of the same tables, in the same run.

The actor is the real one, built as `conveyor actor persistence` builds it (its
own NATS user, a pool of 4, `OrderedRuntime` over every partition), run in this
process on uvloop. The rate is taken after a warm-up share of the events, up to
the moment every partition's watermark in Postgres reaches the end of its
partition in the stream.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable
from typing import Any

import msgspec

from ops.bench.report import Report, machine
from ops.bench.servers import ProcessStat, cpu_line, cpu_us_per_event, process_stats
from ops.bench.stack import bench_stack
from schemas.settings import Settings

TARGET = 0.5
"""Persistence at least this share of the bare COPY's events per second."""
SCRATCH = "bench_ceiling"


class Side(msgspec.Struct, frozen=True, kw_only=True):
    events: int
    """Events in the measured part (after the warm-up)."""
    seconds: float
    events_per_s: float
    cpu_us_per_event: dict[str, float] = {}
    """CPU per measured event, by process: this one (the actor, or the COPY's client)
    and the embedded servers it started."""


class PersistenceReport(Report, frozen=True, kw_only=True):
    events: int
    jobs: int
    partitions: int
    fill_seconds: float
    fill_events_per_s: float
    warmup_events: int
    persistence: Side
    persistence_total_seconds: float
    """From the actor's start (leases included) to the last watermark."""
    bare_copy: Side
    ratio_to_bare_copy: float
    target_ratio: float
    target_met: bool


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--events", type=int, default=200_000, help="events in the stream")
    parser.add_argument(
        "--warmup", type=float, default=0.1, help="share of the events before measuring"
    )


def run(
    settings: Settings, args: argparse.Namespace, echo: Callable[[str], None]
) -> PersistenceReport:
    import uvloop

    with bench_stack(settings, "persistence") as ready:
        report = uvloop.run(_bench(ready, args.events, args.warmup, echo))
    echo(f"{'run':<36}{'events':>10}{'seconds':>10}{'events/s':>12}")
    for label, side in (
        ("persistence actor", report.persistence),
        ("bare asyncpg COPY (ceiling)", report.bare_copy),
    ):
        echo(f"{label:<36}{side.events:>10}{side.seconds:>10.2f}{side.events_per_s:>12,.0f}")
        echo(f"  CPU µs per event: {cpu_line(side.cpu_us_per_event)}")
    met = "met" if report.target_met else "NOT met"
    echo(
        f"ratio to the bare COPY: {report.ratio_to_bare_copy:.3f}"
        f" (target {TARGET:.2f}: {met}); stream filled at {report.fill_events_per_s:,.0f}"
        f" events/s; {report.events} events, {report.jobs} jobs, {report.partitions} partitions"
    )
    return report


async def _bench(
    settings: Settings, count: int, warmup: float, echo: Callable[[str], None]
) -> PersistenceReport:
    from ops.bench import events
    from ops.connections import nats_connection, postgres_pool

    async with nats_connection(settings, name="conveyor-bench", user="ops") as nc:
        js = nc.jetstream()
        published, fill_seconds = await events.fill(js, count, echo)
        ends = await events.partition_ends(js, settings.partitions)
    echo("applying with persistence")
    warm_at = int(published * warmup)
    side, total = await _persistence(settings, published, warm_at, ends)
    async with postgres_pool(settings, size=2) as pool:
        jobs, succeeded, stored = await _check(pool)
        if stored != published or succeeded != jobs:
            raise RuntimeError(
                f"persistence stored {stored} of {published} events,"
                f" {succeeded} of {jobs} jobs succeeded"
            )
        echo("applied; bare COPY of the same rows")
        ceiling = await _bare_copy(pool, warmup)
    ratio = side.events_per_s / ceiling.events_per_s
    return PersistenceReport(
        suite="persistence",
        **machine(),
        events=published,
        jobs=jobs,
        partitions=settings.partitions,
        fill_seconds=round(fill_seconds, 3),
        fill_events_per_s=round(published / fill_seconds, 1),
        warmup_events=warm_at,
        persistence=side,
        persistence_total_seconds=round(total, 3),
        bare_copy=ceiling,
        ratio_to_bare_copy=round(ratio, 3),
        target_ratio=TARGET,
        target_met=ratio >= TARGET,
    )


async def _persistence(
    settings: Settings, count: int, warm_at: int, ends: dict[int, int]
) -> tuple[Side, float]:
    """Runs the actor until every watermark reaches its partition's end."""
    from actors.ordered import OrderedRuntime
    from actors.persistence import PersistenceActor
    from actors.publisher import Publisher
    from ops.connections import nats_connection, postgres_pool
    from ops.processes import refused

    deadline = time.monotonic() + max(120.0, count / 500)
    cpu_from: dict[int, ProcessStat] = {}
    async with (
        nats_connection(settings, name="conveyor-persistence", user="persistence") as nc,
        postgres_pool(settings, size=4) as pool,
        postgres_pool(settings, size=1) as watcher,
    ):
        js = nc.jetstream()
        runtime = OrderedRuntime(PersistenceActor(pool, refused(js, Publisher(js))), js, settings)
        stop = asyncio.Event()
        started = time.perf_counter()
        task = asyncio.create_task(runtime.run(stop))
        warm: tuple[int, float] | None = None
        try:
            while True:
                if task.done():
                    task.result()
                    raise RuntimeError("the persistence runtime stopped early")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"persistence applied {runtime.applied} of {count}")
                if warm is None and runtime.applied >= warm_at:
                    # The CPU reading first: counted from it, events and time align.
                    cpu_from = await asyncio.to_thread(process_stats)
                    warm = (runtime.applied, time.perf_counter())
                if runtime.applied >= count and await _at_end(watcher, ends):
                    break
                await asyncio.sleep(0.05)
            finished = time.perf_counter()
            cpu_to = await asyncio.to_thread(process_stats)
        finally:
            stop.set()
            await task
    assert warm is not None
    measured = count - warm[0]
    seconds = finished - warm[1]
    side = Side(
        events=measured,
        seconds=round(seconds, 3),
        events_per_s=round(measured / seconds, 1),
        cpu_us_per_event=cpu_us_per_event(cpu_from, cpu_to, "persistence", measured),
    )
    return side, finished - started


async def _at_end(pool: Any, ends: dict[int, int]) -> bool:
    rows = await pool.fetch(
        "SELECT partition, seq FROM watermarks WHERE stream = 'JOBS'",
    )
    marks = {int(r["partition"]): int(r["seq"]) for r in rows}
    return all(marks.get(p, 0) >= end for p, end in ends.items())


async def _check(pool: Any) -> tuple[int, int, int]:
    row = await pool.fetchrow(
        "SELECT (SELECT count(*) FROM jobs) AS jobs,"
        " (SELECT count(*) FROM jobs WHERE status = 'succeeded') AS succeeded,"
        " (SELECT count(*) FROM job_events) AS stored"
    )
    return int(row["jobs"]), int(row["succeeded"]), int(row["stored"])


async def _bare_copy(pool: Any, warmup: float) -> Side:
    """COPY of the rows persistence wrote (every event row, every final job row) into
    empty copies of `job_events` and `jobs` (indexes and constraints included)."""
    async with pool.acquire() as conn:
        events = [tuple(r) for r in await conn.fetch("SELECT * FROM job_events ORDER BY seq")]
        jobs = [tuple(r) for r in await conn.fetch("SELECT * FROM jobs ORDER BY last_seq")]
        await conn.execute(f"DROP SCHEMA IF EXISTS {SCRATCH} CASCADE; CREATE SCHEMA {SCRATCH}")
        for table in ("job_events", "jobs"):
            await conn.execute(
                f"CREATE TABLE {SCRATCH}.{table} (LIKE public.{table} INCLUDING ALL)"
            )

        async def copy(event_rows: list[tuple[Any, ...]], job_rows: list[tuple[Any, ...]]) -> float:
            begun = time.perf_counter()
            await conn.copy_records_to_table("job_events", schema_name=SCRATCH, records=event_rows)
            await conn.copy_records_to_table("jobs", schema_name=SCRATCH, records=job_rows)
            return time.perf_counter() - begun

        # The warm-up share first, as the actor's rate is taken after its warm-up.
        warm_events = int(len(events) * warmup)
        warm_jobs = int(len(jobs) * warmup)
        await copy(events[:warm_events], jobs[:warm_jobs])
        rest = len(events) - warm_events
        cpu_from = await asyncio.to_thread(process_stats)
        seconds = await copy(events[warm_events:], jobs[warm_jobs:])
        cpu_to = await asyncio.to_thread(process_stats)
        await conn.execute(f"DROP SCHEMA {SCRATCH} CASCADE")
    return Side(
        events=rest,
        seconds=round(seconds, 3),
        events_per_s=round(rest / seconds, 1),
        cpu_us_per_event=cpu_us_per_event(cpu_from, cpu_to, "COPY client", rest),
    )
