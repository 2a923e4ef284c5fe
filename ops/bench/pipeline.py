"""`conveyor bench pipeline`: small CSV jobs through all four actors, against a Celery
chain doing the same steps, on one fresh embedded stack, in one run.

Conveyor runs as separate processes (the gateway and one process per actor, as
`conveyor gateway` / `conveyor actor NAME`). The load generator, in this process, keeps
a fixed number of jobs in flight (closed loop): create an upload, PUT the bytes to the
presigned URL, complete it; the clock starts when `complete` is answered. It learns
that a job ended from the notification relay (core NATS, as the `subscriber` user)
and stops the clock once `GET /v1/jobs/{id}` shows `succeeded`.

The baseline (`ops.bench.celery_chain`) is a Celery worker (prefork) on the same Redis,
with the same files and the same number of jobs in flight: the client puts the object
in S3, enqueues the chain and starts the clock when `apply_async` returns; the chain's
last task publishes the job id on Redis after its INSERT committed.

Both sides get a warm-up, then a fixed measuring time; jobs/s counts the jobs that
finished inside the measuring window.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import msgspec

from ops.bench.report import Latency, Report, latency, machine
from ops.bench.servers import (
    cpu_by_name,
    process_stats,
    server,
    settings_env,
    tree_cpu_seconds,
    wait_http,
)
from schemas.settings import Settings


def conveyor_processes(processing: int) -> dict[str, list[str]]:
    """The gateway and each actor as a process of its own; `processing` replicas of the
    processing actor (they share its durable consumer), the stage that does the work."""
    actors = ["upload", *(["processing"] * processing), "persistence", "notification"]
    names = ["upload", *(f"processing-{i + 1}" for i in range(processing))]
    names += ["persistence", "notification"]
    return {
        "gateway": ["gateway", "--no-provision"],
        **{n: ["actor", a, "--no-provision"] for n, a in zip(names, actors, strict=True)},
    }


OWNER = "bench-pipeline"
JOB_TIMEOUT = 60.0
# Between two looks at a job whose ending was relayed but is not visible yet.
POLL_SECONDS = 0.01
# The relayed event that ends a job, and the status it gives the job.
JOB_ENDINGS = {"processed": "succeeded", "failed": "failed", "rejected": "rejected"}
STATUS = "SELECT status FROM jobs WHERE job_id = $1"


# CPU seconds in the window: by process measured, and by name beside them.
Spent = tuple[dict[str, float], dict[str, float]]


class Side(msgspec.Struct, frozen=True, kw_only=True):
    system: str
    processes: str
    in_flight: int
    measured_seconds: float
    jobs: int
    failed: int
    jobs_per_s: float
    latency_ms: Latency
    cpu_seconds: dict[str, float]
    """CPU time of each process (children included) inside the measuring window."""
    cpu_ms_per_job: float
    beside_cpu_seconds: dict[str, float] = {}
    """CPU time inside the window of what runs beside those processes, by command
    name: the servers, and the load generator (this process)."""
    all_cpu_ms_per_job: float = 0.0
    """Both together: the machine's CPU per job, as far as this suite started it."""


class PipelineReport(Report, frozen=True, kw_only=True):
    file_bytes: int
    rows: int
    conveyor: Side | None
    celery: Side | None
    ratio: float | None
    """Conveyor's jobs/s over the Celery chain's, in the same run."""
    other_load: str
    """What else was running on the machine (load average at the start)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--in-flight", type=int, default=16, help="jobs in flight (closed loop)")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds before measuring")
    parser.add_argument("--seconds", type=float, default=20.0, help="measuring time")
    parser.add_argument("--rows", type=int, default=200, help="rows of the small CSV")
    parser.add_argument(
        "--processing",
        type=int,
        default=2,
        help="processing actor processes (replicas on one durable consumer)",
    )
    parser.add_argument(
        "--celery-concurrency",
        type=int,
        help="Celery prefork children (default: as many processes in all as Conveyor has)",
    )
    parser.add_argument(
        "--only", choices=("conveyor", "celery"), help="measure one side only (no ratio)"
    )


@dataclass
class Window:
    """Collects finished jobs; only those ending inside [start, end) are counted."""

    warmup: float
    seconds: float
    start: float = 0.0
    end: float = 0.0
    latencies: list[float] = field(default_factory=list)
    failed: int = 0

    def open(self) -> None:
        self.start = time.monotonic() + self.warmup
        self.end = self.start + self.seconds

    def record(self, finished: float, seconds: float, ok: bool) -> None:
        if self.start <= finished < self.end:
            if ok:
                self.latencies.append(seconds)
            else:
                self.failed += 1

    def side(self, system: str, processes: str, in_flight: int, cpu: Spent) -> Side:
        jobs = len(self.latencies)
        own, beside = cpu
        every = sum(own.values()) + sum(beside.values())
        return Side(
            system=system,
            processes=processes,
            in_flight=in_flight,
            measured_seconds=self.seconds,
            jobs=jobs,
            failed=self.failed,
            jobs_per_s=round(jobs / self.seconds, 1),
            latency_ms=latency(self.latencies),
            cpu_seconds=own,
            cpu_ms_per_job=round(sum(own.values()) * 1000 / jobs, 1) if jobs else 0.0,
            beside_cpu_seconds=beside,
            all_cpu_ms_per_job=round(every * 1000 / jobs, 1) if jobs else 0.0,
        )


async def _cpu_in_window(window: Window, procs: dict[str, subprocess.Popen[bytes]]) -> Spent:
    """CPU seconds each process (with its children) spent inside the measuring window,
    and those of what ran beside them (see `Side.beside_cpu_seconds`)."""
    roots = {name: p.pid for name, p in procs.items()}
    await asyncio.sleep(max(0.0, window.start - time.monotonic()))
    # Off the loop: a scan of /proc would hold up the workers at the window's edges.
    before = await asyncio.to_thread(process_stats)
    await asyncio.sleep(max(0.0, window.end - time.monotonic()))
    after = await asyncio.to_thread(process_stats)
    was, now = tree_cpu_seconds(roots, before), tree_cpu_seconds(roots, after)
    beside = cpu_by_name(os.getpid(), "load generator", before, after, leave_out=roots.values())
    return (
        {name: round(now[name] - was[name], 2) for name in roots},
        {
            name: round(seconds, 2)
            for name, seconds in sorted(beside.items(), key=lambda item: -item[1])
            if seconds >= 0.005
        },
    )


@contextlib.contextmanager
def _processes(
    commands: dict[str, list[str]], env: dict[str, str], logs: Path
) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    with contextlib.ExitStack() as stack:
        yield {
            name: stack.enter_context(server(command, env, logs / f"{name}.log"))
            for name, command in commands.items()
        }


async def _closed_loop(
    in_flight: int,
    window: Window,
    procs: dict[str, subprocess.Popen[bytes]],
    one_job: Callable[[], Any],
    echo: Callable[[str], None],
) -> Spent:
    """Opens `window` and runs `in_flight` workers, each running `one_job` (-> (finished,
    seconds, ok)) until it closes; returns the CPU seconds spent inside it (`_cpu_in_window`)."""

    async def worker() -> None:
        while time.monotonic() < window.end:
            try:
                finished, seconds, ok = await one_job()
            except Exception as exc:
                echo(f"  job error: {type(exc).__name__}: {exc}")
                finished, seconds, ok = time.monotonic(), 0.0, False
                await asyncio.sleep(0.1)
            window.record(finished, seconds, ok)

    window.open()
    cpu = asyncio.create_task(_cpu_in_window(window, procs))
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    return await cpu


# -- Conveyor --------------------------------------------------------------------------


@asynccontextmanager
async def _relay(
    settings: Settings, waiting: dict[str, asyncio.Future[str]]
) -> AsyncIterator[None]:
    """Resolves `waiting[job_id]` with the type of the job's ending event."""
    from ops.connections import nats_connection
    from schemas import subjects

    async with nats_connection(settings, name="bench-pipeline", user="subscriber") as nc:

        async def on_event(msg: Any) -> None:
            job_id, event_type = msg.subject.split(".")[-2:]
            future = waiting.get(job_id)
            if future is not None and not future.done():
                future.set_result(event_type)

        for ending in JOB_ENDINGS:
            await nc.subscribe(subjects.notify_job("*", ending), cb=on_event)
        await nc.flush()
        yield


async def _conveyor(
    settings: Settings, args: argparse.Namespace, content: bytes, echo: Callable[[str], None]
) -> Side:
    import aiohttp
    import asyncpg

    from gateway.auth import issue_token
    from ops.stack import free_port

    settings = settings.replace(http_port=free_port())
    url = f"http://{settings.http_host}:{settings.http_port}"
    commands = {
        name: [sys.executable, "-m", "ops", *command]
        for name, command in conveyor_processes(args.processing).items()
    }
    logs = Path(settings.data_dir) / "logs" / "bench"
    headers = {"Authorization": f"Bearer {issue_token(settings, OWNER)}"}
    waiting: dict[str, asyncio.Future[str]] = {}
    window = Window(args.warmup, args.seconds)
    connector = aiohttp.TCPConnector(limit=0)
    with _processes(commands, settings_env(settings), logs) as procs:
        # A blocking probe (urllib): in a thread, off the event loop.
        await asyncio.to_thread(wait_http, f"{url}/ready", procs["gateway"], logs / "gateway.log")
        async with (
            aiohttp.ClientSession(url, headers=headers, connector=connector) as api,
            aiohttp.ClientSession() as s3,
            asyncpg.create_pool(settings.database_url, min_size=1, max_size=4) as db,
            _relay(settings, waiting),
        ):

            async def one_job() -> tuple[float, float, bool]:
                body = {
                    "filename": "small.csv",
                    "content_type": "text/csv",
                    "size": len(content),
                }
                async with api.post("/v1/uploads", json=body) as r:
                    assert r.status == 201, await r.text()
                    ticket = await r.json()
                async with s3.put(ticket["url"], data=content, headers=ticket["headers"]) as r:
                    assert r.status == 200, await r.text()
                job_id = ticket["job_id"]
                ended = waiting[job_id] = asyncio.get_running_loop().create_future()
                try:
                    async with api.post(f"/v1/uploads/{ticket['upload_id']}/complete") as r:
                        assert r.status == 202, await r.text()
                        await r.read()
                    started = time.monotonic()
                    await asyncio.wait_for(ended, JOB_TIMEOUT)
                finally:
                    waiting.pop(job_id, None)
                # Ended in the stream; persistence may not have applied it yet. Wait
                # for that in Postgres (polling the gateway as often would load it
                # more than the jobs do), then the figure is taken when GET shows it.
                ended_as = JOB_ENDINGS[await ended]
                while await db.fetchval(STATUS, uuid.UUID(job_id)) != ended_as:  # noqa: ASYNC110
                    await asyncio.sleep(POLL_SECONDS)
                while True:
                    async with api.get(f"/v1/jobs/{job_id}") as r:
                        status = (await r.json())["status"] if r.status == 200 else None
                    if status in JOB_ENDINGS.values():
                        finished = time.monotonic()
                        return finished, finished - started, status == "succeeded"
                    await asyncio.sleep(POLL_SECONDS)

            spent = await _closed_loop(args.in_flight, window, procs, one_job, echo)
    return window.side(
        "conveyor",
        f"gateway, upload, processing x{args.processing}, persistence, notification",
        args.in_flight,
        spent,
    )


# -- Celery ----------------------------------------------------------------------------


async def _celery(
    settings: Settings, args: argparse.Namespace, content: bytes, echo: Callable[[str], None]
) -> Side:
    import asyncpg
    import redis.asyncio as aredis

    from ops.bench import celery_chain
    from ops.connections import s3_client

    conn = await asyncpg.connect(settings.database_url)
    try:
        await conn.execute(celery_chain.CREATE_TABLE)
    finally:
        await conn.close()
    celery_chain.app.conf.broker_url = settings.redis_url
    celery_chain_of = importlib.import_module("celery").chain

    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "ops.bench.celery_chain",
        "worker",
        "--pool=prefork",
        f"--concurrency={args.celery_concurrency}",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "--loglevel=WARNING",
    ]
    logs = Path(settings.data_dir) / "logs" / "bench"
    waiting: dict[str, asyncio.Future[None]] = {}
    window = Window(args.warmup, args.seconds)
    redis = aredis.Redis.from_url(settings.redis_url)
    pubsub = redis.pubsub()
    await pubsub.subscribe(celery_chain.DONE_CHANNEL)

    async def listen() -> None:
        async for message in pubsub.listen():
            if message["type"] != "message":
                continue
            future = waiting.get(message["data"].decode())
            if future is not None and not future.done():
                future.set_result(None)

    listener = asyncio.create_task(listen())
    try:
        with _processes({"celery": command}, settings_env(settings), logs) as procs:
            async with s3_client(settings) as s3:
                await _celery_ready(celery_chain.app)

                async def one_job() -> tuple[float, float, bool]:
                    job_id = str(uuid.uuid4())
                    key = f"bench-celery/{job_id}/small.csv"
                    await s3.put_object(Bucket=settings.s3_bucket, Key=key, Body=content)
                    job = {
                        "job_id": job_id,
                        "key": key,
                        "filename": "small.csv",
                        "size": len(content),
                    }
                    done = waiting[job_id] = asyncio.get_running_loop().create_future()
                    try:
                        workflow = celery_chain_of(
                            celery_chain.verify.s(job),
                            celery_chain.profile.s(),
                            celery_chain.store.s(),
                        )
                        await asyncio.to_thread(workflow.apply_async)
                        started = time.monotonic()
                        await asyncio.wait_for(done, JOB_TIMEOUT)
                    finally:
                        waiting.pop(job_id, None)
                    finished = time.monotonic()
                    return finished, finished - started, True

                spent = await _closed_loop(args.in_flight, window, procs, one_job, echo)
    finally:
        listener.cancel()
        with contextlib.suppress(BaseException):
            await listener
        await cast("Any", pubsub).aclose()
        await redis.aclose()
    return window.side(
        "celery chain",
        f"celery worker, prefork x{args.celery_concurrency}",
        args.in_flight,
        spent,
    )


async def _celery_ready(app: Any) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        replies = await asyncio.to_thread(app.control.ping, timeout=0.5)
        if replies:
            return
    raise RuntimeError("no Celery worker answered in 60 s (see .../logs/bench/celery.log)")


# -- the suite -------------------------------------------------------------------------


def _small_csv(folder: Path, rows: int) -> bytes:
    from ops.bench.datasets import chunk

    path = folder / f"pipeline-{rows}-rows.csv"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        chunk(0, rows).write_csv(path)
    return path.read_bytes()


def run(
    settings: Settings, args: argparse.Namespace, echo: Callable[[str], None]
) -> PipelineReport:
    from ops.bench.stack import bench_stack

    load = "load average {:.2f} {:.2f} {:.2f} at the start".format(*os.getloadavg())
    content = _small_csv(Path(settings.data_dir) / "bench", args.rows)
    echo(
        f"small CSV: {args.rows} rows, {len(content)} bytes; {args.in_flight} jobs in flight, "
        f"{args.warmup:.0f} s warm-up, {args.seconds:.0f} s measured; {load}"
    )
    conveyor = celery = None
    if args.celery_concurrency is None:
        # The same number of processes: Celery's main process and its prefork children.
        args.celery_concurrency = len(conveyor_processes(args.processing)) - 1
    with bench_stack(settings, "pipeline") as ready:
        if args.only in (None, "conveyor"):
            echo(f"conveyor: gateway + 4 actors, processing x{args.processing} ...")
            conveyor = asyncio.run(_conveyor(ready, args, content, echo))
        if args.only in (None, "celery"):
            echo(f"celery chain: prefork x{args.celery_concurrency} ...")
            celery = asyncio.run(_celery(ready, args, content, echo))
    ratio = (
        round(conveyor.jobs_per_s / celery.jobs_per_s, 2)
        if conveyor and celery and celery.jobs_per_s
        else None
    )
    report = PipelineReport(
        suite="pipeline",
        **machine(),
        file_bytes=len(content),
        rows=args.rows,
        conveyor=conveyor,
        celery=celery,
        ratio=ratio,
        other_load=load,
    )
    echo(
        f"{'system':<16}{'in flight':>10}{'jobs':>8}{'failed':>8}{'jobs/s':>9}"
        f"{'p50 ms':>10}{'p99 ms':>10}{'CPU ms/job':>12}"
    )
    for side in (conveyor, celery):
        if side:
            echo(
                f"{side.system:<16}{side.in_flight:>10}{side.jobs:>8}{side.failed:>8}"
                f"{side.jobs_per_s:>9.1f}{side.latency_ms.p50:>10.1f}{side.latency_ms.p99:>10.1f}"
                f"{side.cpu_ms_per_job:>12.1f}"
            )
    for side in (conveyor, celery):
        if side:
            spent = ", ".join(f"{name} {seconds:.1f}" for name, seconds in side.cpu_seconds.items())
            echo(f"  {side.system} CPU seconds in the window: {spent}")
            beside = ", ".join(f"{n} {s:.1f}" for n, s in side.beside_cpu_seconds.items())
            echo(f"    beside it: {beside}; all: {side.all_cpu_ms_per_job:.1f} ms CPU per job")
    if ratio is not None:
        echo(f"ratio conveyor / celery chain: {ratio:.2f}x (target >= 3x)")
    return report
