"""`conveyor bench replay`: events per second of `conveyor replay --rebuild` over a
JOBS stream of at least a million events.

The stream is filled with whole jobs (see `ops.bench.events`), applied once (a
first rebuild: the warm-up, and the state a real rebuild starts from: full tables
to empty), then rebuilt again, timed: `ops.replay.replay` as `conveyor replay
--rebuild` calls it, with the ops user and a pool of the same size.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable

import msgspec

from ops.bench.report import Report, machine
from ops.bench.servers import cpu_line, cpu_us_per_event, process_stats
from ops.bench.stack import bench_stack
from schemas.settings import Settings

TARGET = 20_000.0
"""Events per second of a rebuild."""


class Rebuild(msgspec.Struct, frozen=True, kw_only=True):
    events: int
    seconds: float
    """Reading and applying, as `conveyor replay` reports it."""
    events_per_s: float
    wall_seconds: float
    """The whole command: leases paused and taken, tables emptied, applied, handed back."""
    cpu_us_per_event: dict[str, float] = {}
    """CPU per event over the whole command, by process: this one (replay) and the
    embedded servers it started."""


class ReplayBenchReport(Report, frozen=True, kw_only=True):
    events: int
    jobs: int
    partitions: int
    fill_seconds: float
    fill_events_per_s: float
    first_apply: Rebuild
    rebuild: Rebuild
    target_events_per_s: float
    target_met: bool


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--events", type=int, default=1_000_000, help="events in the stream")


def run(
    settings: Settings, args: argparse.Namespace, echo: Callable[[str], None]
) -> ReplayBenchReport:
    import uvloop

    with bench_stack(settings, "replay") as ready:
        report = uvloop.run(_bench(ready, args.events, echo))
    echo(f"{'run':<36}{'events':>10}{'seconds':>10}{'events/s':>12}{'wall s':>10}")
    for label, r in (
        ("first apply (warm-up)", report.first_apply),
        ("replay --rebuild", report.rebuild),
    ):
        echo(
            f"{label:<36}{r.events:>10}{r.seconds:>10.2f}{r.events_per_s:>12,.0f}"
            f"{r.wall_seconds:>10.2f}"
        )
        echo(f"  CPU µs per event: {cpu_line(r.cpu_us_per_event)}")
    met = "met" if report.target_met else "NOT met"
    echo(
        f"replay --rebuild: {report.rebuild.events_per_s:,.0f} events/s"
        f" (target {TARGET:,.0f}: {met}); stream filled at {report.fill_events_per_s:,.0f}"
        f" events/s; {report.events} events, {report.jobs} jobs"
    )
    return report


async def _bench(settings: Settings, count: int, echo: Callable[[str], None]) -> ReplayBenchReport:
    from actors.persistence import PersistenceActor
    from actors.publisher import Publisher
    from ops.bench import events
    from ops.connections import nats_connection, postgres_pool
    from ops.processes import refused
    from ops.replay import replay

    async with (
        nats_connection(settings, name="conveyor-bench", user="ops") as nc,
        # As `conveyor replay` opens it (ops.cli._ops_clients).
        postgres_pool(settings, size=2) as pool,
    ):
        js = nc.jetstream()
        published, fill_seconds = await events.fill(js, count, echo)
        actor = PersistenceActor(pool, refused(js, Publisher(js)))

        async def rebuild(label: str) -> Rebuild:
            echo(label)
            cpu_from = await asyncio.to_thread(process_stats)
            begun = time.perf_counter()
            done = await replay(js, pool, actor, settings, rebuild=True)
            wall = time.perf_counter() - begun
            cpu_to = await asyncio.to_thread(process_stats)
            stored = await pool.fetchval("SELECT count(*) FROM job_events")
            if done.read != published or done.applied != published or stored != published:
                raise RuntimeError(
                    f"replay read {done.read}, applied {done.applied}, stored {stored}"
                    f" of {published} events"
                )
            return Rebuild(
                events=done.read,
                seconds=done.seconds,
                events_per_s=round(done.read / done.seconds, 1),
                wall_seconds=round(wall, 3),
                cpu_us_per_event=cpu_us_per_event(cpu_from, cpu_to, "replay", done.read),
            )

        first = await rebuild("applying once (warm-up)")
        timed = await rebuild("timed replay --rebuild")
        jobs = int(await pool.fetchval("SELECT count(*) FROM jobs WHERE status = 'succeeded'"))
    if jobs * events.EVENTS_PER_JOB != published:
        raise RuntimeError(f"{jobs} jobs succeeded for {published} events")
    return ReplayBenchReport(
        suite="replay",
        **machine(),
        events=published,
        jobs=jobs,
        partitions=settings.partitions,
        fill_seconds=round(fill_seconds, 3),
        fill_events_per_s=round(published / fill_seconds, 1),
        first_apply=first,
        rebuild=timed,
        target_events_per_s=TARGET,
        target_met=timed.events_per_s >= TARGET,
    )
