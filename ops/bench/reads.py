"""`conveyor bench reads`: `GET /v1/jobs/{id}` requests per second and latency, once
with every read a cache miss (`CONVEYOR_JOB_CACHE_SECONDS=0`: Postgres each time) and
once with every read a hit (the ended jobs' views in Redis), over the same jobs, one
gateway process, the load generator in a process of its own."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from pathlib import Path

import msgspec

from ops.bench.loadgen import spawn
from ops.bench.report import Latency, Report, latency, machine
from ops.bench.servers import server, settings_env
from ops.bench.stack import bench_stack
from ops.stack import free_port
from schemas.api import ENDED_STATUSES
from schemas.settings import Settings


class Side(msgspec.Struct, frozen=True, kw_only=True):
    cache: str
    """`cold`: every read misses (no cache); `warm`: every read hits."""
    concurrency: int
    requests: int
    errors: int
    seconds: float
    requests_per_s: float
    latency_ms: Latency
    gateway_cpu_share: float
    """Of one core, during the measured window."""
    loadgen_cpu_share: float


class ReadsReport(Report, frozen=True, kw_only=True):
    jobs: int
    sides: list[Side]
    warm_over_cold: float
    """Requests per second, cache warm over cold, at the same concurrency."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--jobs", type=int, default=200, help="jobs made to be read")
    parser.add_argument("--concurrency", type=int, default=32, help="connections")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured per side")
    parser.add_argument("--warmup", type=float, default=2.0)


async def _make_jobs(url: str, token: str, count: int) -> list[str]:
    """Small CSVs through the whole pipeline, until every job has ended."""
    import httpx

    headers = {"Authorization": f"Bearer {token}"}
    content = b"a,b\n1,2\n3,4\n"
    ids: list[str] = []
    # Presigned PUTs go to S3 without the bearer token, as a browser's would.
    async with (
        httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as api,
        httpx.AsyncClient(timeout=30) as s3,
    ):

        async def one() -> None:
            body = {"filename": "r.csv", "content_type": "text/csv", "size": len(content)}
            ticket = (await api.post("/v1/uploads", json=body)).raise_for_status().json()
            put = await s3.put(ticket["url"], content=content, headers=ticket["headers"])
            put.raise_for_status()
            done = await api.post(f"/v1/uploads/{ticket['upload_id']}/complete")
            done.raise_for_status()
            ids.append(ticket["job_id"])

        for start in range(0, count, 16):
            async with asyncio.TaskGroup() as tg:
                for _ in range(min(16, count - start)):
                    tg.create_task(one())
        deadline = asyncio.get_running_loop().time() + 300
        waiting = set(ids)
        while waiting:
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError(f"{len(waiting)} jobs did not end in 300 s")
            for job_id in list(waiting):
                job = (await api.get(f"/v1/jobs/{job_id}")).json()
                if job.get("status") in ENDED_STATUSES:
                    waiting.discard(job_id)
            await asyncio.sleep(0.2)
    return ids


async def _read_all(url: str, token: str, ids: list[str]) -> None:
    import httpx

    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as api:
        for job_id in ids:
            (await api.get(f"/v1/jobs/{job_id}")).raise_for_status()


def _measure(
    settings: Settings,
    *,
    cache: str,
    ids_file: Path,
    ids: list[str],
    token: str,
    args: argparse.Namespace,
    logs: Path,
) -> Side:
    port = free_port()
    ttl = 0 if cache == "cold" else 3600
    gateway_settings = settings.replace(http_port=port, job_cache_seconds=ttl)
    url = f"http://127.0.0.1:{port}"
    with server(
        [sys.executable, "-m", "ops", "gateway", "--no-provision"],
        settings_env(gateway_settings),
        logs / f"gateway-{cache}.log",
        probe=f"{url}/ready",
    ) as proc:
        if cache == "warm":
            asyncio.run(_read_all(url, token, ids))
        figures = spawn(
            port, "read", args.concurrency, token=token, duration=args.seconds,
            warmup=args.warmup, ids_in=[ids_file], server_pid=proc.pid,
        )  # fmt: skip
    seconds = figures.seconds or 1.0
    # The gateway's CPU over the measured window: its share of one core.
    gateway_cpu = figures.server_cpu_seconds / seconds
    return Side(
        cache=cache,
        concurrency=args.concurrency,
        requests=figures.count,
        errors=figures.errors,
        seconds=round(seconds, 2),
        requests_per_s=round(figures.count / seconds, 1),
        latency_ms=latency(figures.latencies),
        gateway_cpu_share=round(gateway_cpu, 2),
        loadgen_cpu_share=round(figures.cpu_seconds / seconds, 2),
    )


def run(settings: Settings, args: argparse.Namespace, echo: Callable[[str], None]) -> ReadsReport:
    from gateway.auth import issue_token

    with bench_stack(settings, "reads") as ready:
        logs = Path(ready.data_dir) / "logs"
        token = issue_token(ready, "bench-reads")
        port = free_port()
        echo(f"making {args.jobs} jobs through the pipeline")
        with server(
            [sys.executable, "-m", "ops", "run"],
            settings_env(ready.replace(http_port=port)),
            logs / "conveyor-run.log",
            probe=f"http://127.0.0.1:{port}/ready",
        ):
            ids = asyncio.run(_make_jobs(f"http://127.0.0.1:{port}", token, args.jobs))
        ids_file = Path(ready.data_dir) / "job-ids.txt"
        ids_file.write_text("\n".join(ids))
        sides = [
            _measure(
                ready, cache=cache, ids_file=ids_file, ids=ids, token=token, args=args, logs=logs
            )
            for cache in ("cold", "warm")
        ]
    cold, warm = sides
    report = ReadsReport(
        suite="reads",
        **machine(),
        jobs=len(ids),
        sides=sides,
        warm_over_cold=round(warm.requests_per_s / max(cold.requests_per_s, 1e-9), 2),
    )
    echo(
        f"{'cache':<8}{'conc':>6}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'p99.9':>9}"
        f"{'errors':>8}{'gw cpu':>8}{'lg cpu':>8}"
    )
    for s in sides:
        echo(
            f"{s.cache:<8}{s.concurrency:>6}{s.requests_per_s:>10.0f}{s.latency_ms.p50:>9.2f}"
            f"{s.latency_ms.p99:>9.2f}{s.latency_ms.p999:>9.2f}{s.errors:>8}"
            f"{s.gateway_cpu_share:>8.2f}{s.loadgen_cpu_share:>8.2f}"
        )
    echo(f"warm over cold: {report.warm_over_cold:.2f}x")
    return report
