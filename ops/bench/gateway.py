"""`conveyor bench gateway`: accepted writes per second and latency of the gateway's
two write routes, against the bare JetStream publish-with-ack ceiling, a FastAPI +
Celery baseline and the floor of any Litestar gateway, in one run on one machine.

Every side is a process of its own: the gateway (`python -m ops gateway`), the
baseline (`uvicorn ops.bench.baseline_app:app`) and the floor (`uvicorn
ops.bench.floor_app:app`), both served the same way (one process, uvloop, httptools,
no access log), the load generator(s) (`ops.bench.loadgen`, closed loop, keep-alive)
and the ceiling (`ops.bench.ceiling`). The load generator's CPU and the server's CPU
are measured for every figure, so the table shows which side was saturated.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack
from pathlib import Path
from typing import Any

import msgspec

from ops.bench.ceiling import CeilingFigures
from ops.bench.loadgen import Figures, spawn
from ops.bench.report import Latency, Report, latency, machine
from ops.bench.servers import process_stats, server, settings_env
from ops.bench.stack import bench_stack
from schemas.settings import Settings

OWNER = "bench-owner"


class Level(msgspec.Struct, frozen=True, kw_only=True):
    target: str
    """conveyor-complete, conveyor-create, baseline or floor."""
    concurrency: int
    requests: int
    seconds: float
    per_second: float
    latency_ms: Latency
    errors: int
    statuses: dict[str, int]
    loadgen_cpu_percent: float
    """CPU of the load generator process(es), in % of one core."""
    server_cpu_percent: float
    """CPU of the server process (and its threads), in % of one core."""
    server_cpu_us_per_request: float
    """The server's CPU time per answered request: steadier than req/s when other work
    shares the machine."""
    ran_out_of_uploads: bool = False


class Ceiling(msgspec.Struct, frozen=True, kw_only=True):
    mode: str
    in_flight: int
    per_second: float
    latency_ms: Latency | None
    """None with acks in flight: the publishes are counted, not timed."""
    cpu_percent: float
    payload_bytes: int


class Ratios(msgspec.Struct, frozen=True, kw_only=True):
    peak_route: str
    peak_concurrency: int
    peak_per_second: float
    p99_ms_at_peak: float
    baseline_peak_per_second: float
    to_baseline: float
    """Conveyor's peak over the baseline's (target >= 3)."""
    to_async_ceiling: float
    """Conveyor's peak over the async-ack ceiling (target >= 0.5)."""
    to_sync_ceiling: float
    best_under_20ms: str
    """The fastest Conveyor level whose p99 is under 20 ms ("route@connections")."""
    best_under_20ms_per_second: float
    baseline_cpu_per_request_ratio: float
    """The baseline's server CPU per request at its peak over Conveyor's at its peak: how
    much more work one baseline request costs, whatever else ran on the machine."""
    meets_baseline_target: bool
    meets_ceiling_target: bool
    meets_p99_target: bool
    floor_peak_per_second: float = 0.0
    """The floor's peak: a Litestar route that only publishes and awaits the ack."""
    floor_to_async_ceiling: float = 0.0
    """The floor's peak over the async-ack ceiling: the most any Litestar gateway served
    this way could reach of it."""
    to_floor: float = 0.0
    """Conveyor's `complete` at its peak over the floor's peak."""
    cpu_per_request_over_floor: float = 0.0
    """`complete`'s server CPU per request at its peak over the floor's at the floor's
    peak: what the gateway's own work (token, lookup, log line...) adds."""


class GatewayReport(Report, frozen=True, kw_only=True):
    served_by: str
    loadgen_processes: int
    duration_seconds: float
    warmup_seconds: float
    levels: list[Level]
    ceiling: list[Ceiling]
    ratios: Ratios
    load_average_before: list[float]
    busy_processes_before: list[str]
    """Other processes using CPU when the run started (name, % of one core)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--concurrency", default="1,16,32,64,256", help="connections, comma-separated levels"
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds measured per level")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before measuring")
    parser.add_argument("--loadgen-processes", type=int, default=1)
    parser.add_argument("--in-flight", type=int, default=256, help="async ceiling: unacked")
    parser.add_argument(
        "--only",
        choices=["conveyor", "baseline", "floor", "ceiling"],
        action="append",
        help="measure only these sides (repeat; default all)",
    )
    parser.add_argument("--keep-log", action="store_true", help="print the gateway's log path")


def _level(target: str, concurrency: int, figures: Figures, **extra: Any) -> Level:
    seconds = figures.seconds or 1e-9
    server_cpu = figures.server_cpu_seconds
    return Level(
        target=target,
        concurrency=concurrency,
        requests=figures.count,
        seconds=round(seconds, 2),
        per_second=round(figures.count / seconds, 1),
        latency_ms=latency(figures.latencies),
        errors=figures.errors,
        statuses=figures.statuses,
        loadgen_cpu_percent=round(100 * figures.cpu_seconds / seconds, 1),
        server_cpu_percent=round(100 * server_cpu / seconds, 1),
        server_cpu_us_per_request=round(1e6 * server_cpu / max(1, figures.count)),
        **extra,
    )


def _busy_processes() -> list[str]:
    """Processes that used 5% of a core or more over one second (not this one)."""

    before = process_stats()
    time.sleep(1.0)
    busy = []
    for pid, stat in process_stats().items():
        was = before.get(pid)
        # One started in between is left out: its CPU so far is not all from this second.
        used = round(100 * (stat.cpu_seconds - was.cpu_seconds), 1) if was else 0.0
        if used >= 5 and pid != os.getpid():
            busy.append(f"{_command(pid, stat.name)[:90]} ({used:.0f}%)")
    return busy


def _command(pid: int, name: str) -> str:
    """The command line of `pid`, or its name when that cannot be read (a kernel thread
    has none)."""
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except (OSError, UnicodeDecodeError):
        return name
    return cmd.strip() or name


def run(settings: Settings, args: argparse.Namespace, echo: Callable[[str], None]) -> GatewayReport:
    from gateway.auth import issue_token
    from ops.stack import free_port

    levels_c = [int(c) for c in args.concurrency.split(",") if c.strip()]
    sides = set(args.only or ["conveyor", "baseline", "floor", "ceiling"])
    load_before = [round(x, 2) for x in os.getloadavg()]
    busy = _busy_processes()
    echo(f"load average {load_before}; busy: {'; '.join(busy) or 'nothing'}")
    levels: list[Level] = []
    ceiling: list[Ceiling] = []
    with bench_stack(settings, "gateway") as ready, tempfile.TemporaryDirectory() as tmp:
        logs = Path(ready.data_dir) / "logs"
        token = issue_token(ready, OWNER)
        gw_port, base_port, floor_port = free_port(), free_port(), free_port()
        gw = ready.replace(http_port=gw_port, shutdown_grace_seconds=2.0)

        def load(
            port: int,
            mode: str,
            concurrency: int,
            *,
            ids_in: list[Path] | None = None,
            ids_out: Path | None = None,
            duration: float = args.duration,
            warmup: float = args.warmup,
            server_pid: int = 0,
        ) -> Figures:
            return spawn(
                port, mode, concurrency, token=token, duration=duration, warmup=warmup,
                processes=args.loadgen_processes, ids_in=ids_in, ids_out=ids_out,
                server_pid=server_pid,
            )  # fmt: skip

        pool = Path(tmp) / "uploads"
        pool.touch()
        used = 0

        def take(parts: int) -> list[Path]:
            nonlocal used
            ids = pool.read_text().split()[used:]
            used += len(ids)
            files = []
            for i in range(parts):
                f = Path(tmp) / f"complete-{used}-{i}"
                f.write_text("\n".join(ids[i::parts]))
                files.append(f)
            return files

        # Both servers stay up (an idle one costs nothing) and every level measures each
        # side in turn, the ceiling half-way through: when other work comes and goes on
        # the machine, it weighs on all sides alike.
        with ExitStack() as servers:
            gw_pid = base_pid = floor_pid = 0
            if "conveyor" in sides:
                gw_pid = servers.enter_context(
                    server(
                        [sys.executable, "-m", "ops", "gateway", "--no-provision"],
                        settings_env(gw),
                        logs / "bench-gateway.log",
                        f"http://127.0.0.1:{gw_port}/ready",
                    )
                ).pid
                if args.keep_log:
                    echo(f"gateway log: {logs / 'bench-gateway.log'}")
            if "baseline" in sides:
                env = {**settings_env(ready), "BENCH_BROKER_URL": ready.redis_url}
                base_pid = servers.enter_context(
                    _uvicorn(
                        "ops.bench.baseline_app:app",
                        base_port,
                        env,
                        logs / "bench-baseline.log",
                        lifespan=False,
                    )
                ).pid
            if "floor" in sides:
                floor_pid = servers.enter_context(
                    _uvicorn(
                        "ops.bench.floor_app:app",
                        floor_port,
                        settings_env(ready),
                        logs / "bench-floor.log",
                    )
                ).pid
            complete_rate = 0.0
            for n, c in enumerate(levels_c):
                if gw_pid:
                    figures = load(gw_port, "create", c, ids_out=pool, server_pid=gw_pid)
                    create = _level("conveyor-create", c, figures)
                    levels.append(create)
                    echo(_row(create))
                    # Enough uploads to complete at the best rate seen so far, and then some.
                    window = args.duration + args.warmup
                    need = 1.5 * window * max(complete_rate, 2 * create.per_second)
                    have = len(pool.read_text().split()) - used
                    if have < need and create.per_second > 0:
                        load(
                            gw_port, "create", max(c, 32), ids_out=pool,
                            duration=(need - have) / create.per_second, warmup=0.0,
                        )  # fmt: skip
                    files = take(max(1, min(args.loadgen_processes, c)))
                    figures = load(gw_port, "complete", c, ids_in=files, server_pid=gw_pid)
                    complete = _level(
                        "conveyor-complete", c, figures,
                        ran_out_of_uploads=figures.seconds < args.duration * 0.99,
                    )  # fmt: skip
                    complete_rate = max(complete_rate, complete.per_second)
                    levels.append(complete)
                    echo(_row(complete))
                if base_pid:
                    figures = load(base_port, "baseline", c, server_pid=base_pid)
                    base = _level("baseline", c, figures)
                    levels.append(base)
                    echo(_row(base))
                if floor_pid:
                    figures = load(floor_port, "floor", c, server_pid=floor_pid)
                    floor = _level("floor", c, figures)
                    levels.append(floor)
                    echo(_row(floor))
                if "ceiling" in sides and n == len(levels_c) // 2:
                    for mode in ("sync", "async"):
                        row = _ceiling(ready, mode, args)
                        ceiling.append(row)
                        timed = f"p99 {row.latency_ms.p99} ms" if row.latency_ms else "untimed"
                        echo(
                            f"ceiling {mode:<6} in flight {row.in_flight:>4}:"
                            f" {row.per_second:>10,.0f}/s  {timed}  cpu {row.cpu_percent}%"
                        )
    report = GatewayReport(
        suite="gateway",
        **machine(),
        served_by=(
            "1 process each. Conveyor: `python -m ops gateway --no-provision` (uvicorn"
            " embedded in the process's uvloop loop, httptools protocol writing each answer"
            " in one piece, no uvicorn access log; the gateway's own JSON access line per"
            " request, to a file). Baseline: `uvicorn ops.bench.baseline_app:app --workers 1"
            " --loop uvloop --http httptools --no-access-log` (`async def` route). Floor:"
            " `uvicorn ops.bench.floor_app:app`, served as the baseline (a Litestar route"
            " that publishes and awaits the ack, nothing else)."
        ),
        loadgen_processes=args.loadgen_processes,
        duration_seconds=args.duration,
        warmup_seconds=args.warmup,
        levels=levels,
        ceiling=ceiling,
        ratios=_ratios(levels, ceiling),
        load_average_before=load_before,
        busy_processes_before=busy,
    )
    _table(report, echo)
    return report


def _uvicorn(
    app: str, port: int, env: dict[str, str], log: Path, *, lifespan: bool = True
) -> AbstractContextManager[subprocess.Popen[bytes]]:
    """`app` served as the baseline and the floor are: one process, uvloop, httptools,
    no access log; ready once its lifespan ran (neither has a probe route: any answer
    to a GET will do)."""
    argv = [
        sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port),
        "--workers", "1", "--loop", "uvloop", "--http", "httptools", "--no-access-log",
        "--log-level", "warning", "--lifespan", "on" if lifespan else "off",
    ]  # fmt: skip
    return server(argv, env, log, f"http://127.0.0.1:{port}/", any_status=True)


def _ceiling(settings: Settings, mode: str, args: argparse.Namespace) -> Ceiling:
    argv = [
        sys.executable, "-m", "ops.bench.ceiling", "--mode", mode,
        "--in-flight", str(args.in_flight), "--duration", str(args.duration),
        "--warmup", str(args.warmup),
    ]  # fmt: skip
    done = subprocess.run(argv, env=settings_env(settings), capture_output=True, check=True)
    f = msgspec.json.decode(done.stdout, type=CeilingFigures)
    return Ceiling(
        mode=mode,
        in_flight=f.in_flight,
        per_second=round(f.count / f.seconds, 1),
        latency_ms=None if mode == "async" else latency(f.latencies),
        cpu_percent=round(100 * f.cpu_seconds / f.seconds, 1),
        payload_bytes=f.payload_bytes,
    )


def _ratios(levels: list[Level], ceiling: list[Ceiling]) -> Ratios:
    conveyor = [lv for lv in levels if lv.target.startswith("conveyor")]
    peak = max(conveyor, key=lambda lv: lv.per_second, default=None)
    base_peak = _peak(levels, "baseline")
    base = base_peak.per_second if base_peak else 0.0
    # The floor stands for `complete`: compared with that route's peak alone.
    floor_peak, complete_peak = _peak(levels, "floor"), _peak(levels, "conveyor-complete")
    floor = floor_peak.per_second if floor_peak else 0.0
    ceil = {c.mode: c.per_second for c in ceiling}
    rate = peak.per_second if peak else 0.0
    p99 = peak.latency_ms.p99 if peak else 0.0

    def over(a: float, b: float) -> float:
        return round(a / b, 3) if b else 0.0

    quick = max(
        (lv for lv in conveyor if 0 < lv.latency_ms.p99 < 20),
        key=lambda lv: lv.per_second,
        default=None,
    )
    return Ratios(
        best_under_20ms=f"{quick.target}@{quick.concurrency}" if quick else "",
        best_under_20ms_per_second=quick.per_second if quick else 0.0,
        peak_route=peak.target if peak else "",
        peak_concurrency=peak.concurrency if peak else 0,
        peak_per_second=rate,
        p99_ms_at_peak=p99,
        baseline_peak_per_second=base,
        to_baseline=over(rate, base),
        to_async_ceiling=over(rate, ceil.get("async", 0.0)),
        to_sync_ceiling=over(rate, ceil.get("sync", 0.0)),
        baseline_cpu_per_request_ratio=over(
            base_peak.server_cpu_us_per_request if base_peak else 0.0,
            peak.server_cpu_us_per_request if peak else 0.0,
        ),
        meets_baseline_target=bool(base) and rate >= 3 * base,
        meets_ceiling_target=bool(ceil.get("async")) and rate >= 0.5 * ceil["async"],
        meets_p99_target=bool(peak) and p99 < 20,
        floor_peak_per_second=floor,
        floor_to_async_ceiling=over(floor, ceil.get("async", 0.0)),
        to_floor=over(complete_peak.per_second if complete_peak else 0.0, floor),
        cpu_per_request_over_floor=over(
            complete_peak.server_cpu_us_per_request if complete_peak else 0.0,
            floor_peak.server_cpu_us_per_request if floor_peak else 0.0,
        ),
    )


def _peak(levels: list[Level], target: str) -> Level | None:
    return max(
        (lv for lv in levels if lv.target == target), key=lambda lv: lv.per_second, default=None
    )


def _row(lv: Level) -> str:
    lat = lv.latency_ms
    note = "  (ran out of uploads)" if lv.ran_out_of_uploads else ""
    return (
        f"{lv.target:<18}{lv.concurrency:>6}{lv.per_second:>10,.0f}{lat.p50:>9.2f}"
        f"{lat.p99:>9.2f}{lat.p999:>9.2f}{lv.errors:>8}{lv.loadgen_cpu_percent:>9.0f}%"
        f"{lv.server_cpu_percent:>9.0f}%{lv.server_cpu_us_per_request:>9.0f}{note}"
    )


def _table(report: GatewayReport, echo: Callable[[str], None]) -> None:
    echo("")
    echo(
        f"{'target':<18}{'conns':>6}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'p99.9':>9}"
        f"{'errors':>8}{'loadgen':>10}{'server':>10}{'us/req':>9}"
    )
    for lv in sorted(report.levels, key=lambda lv: (lv.target, lv.concurrency)):
        echo(_row(lv))
    for c in report.ceiling:
        timed = (
            f"p50 {c.latency_ms.p50} p99 {c.latency_ms.p99} ms"
            if c.latency_ms
            else "publishes not timed"
        )
        echo(
            f"ceiling {c.mode} (in flight {c.in_flight}): {c.per_second:,.0f}/s,"
            f" {timed}, cpu {c.cpu_percent}%"
        )
    r = report.ratios
    met = {True: "met", False: "NOT met"}
    echo(
        f"peak: {r.peak_route} at {r.peak_concurrency} connections, {r.peak_per_second:,.0f}/s,"
        f" p99 {r.p99_ms_at_peak} ms (target < 20: {met[r.meets_p99_target]})"
    )
    echo(
        f"to the baseline: {r.to_baseline:.2f}x (target >= 3: {met[r.meets_baseline_target]});"
        f" to the async ceiling: {r.to_async_ceiling:.2f} (target >= 0.5:"
        f" {met[r.meets_ceiling_target]}); to the sync ceiling: {r.to_sync_ceiling:.2f}"
    )
    quick = r.best_under_20ms_per_second
    over_base = (
        f" ({quick / r.baseline_peak_per_second:.2f}x the baseline peak)"
        if r.baseline_peak_per_second
        else ""
    )
    echo(f"fastest with p99 < 20 ms: {r.best_under_20ms or 'none'}, {quick:,.0f}/s{over_base}")
    if r.floor_peak_per_second:
        echo(
            f"the floor (Litestar, publish and ack only) peaks at"
            f" {r.floor_peak_per_second:,.0f}/s: {r.floor_to_async_ceiling:.2f} of the async"
            f" ceiling; Conveyor's peak is {r.to_floor:.2f} of it, at"
            f" {r.cpu_per_request_over_floor:.2f}x its server CPU per request"
        )
    echo(
        f"server CPU per request, baseline over Conveyor (each at its peak):"
        f" {r.baseline_cpu_per_request_ratio:.2f}x"
    )
