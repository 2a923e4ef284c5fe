"""`conveyor`: the one entry point. The only module that reads the process environment."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import structlog
from nats.js import JetStreamContext

from actors.persistence import PersistenceActor
from actors.publisher import Publisher
from gateway.auth import issue_token
from gateway.scopes import ALL_SCOPES, DEFAULT_SCOPES
from ops import dlq
from ops.connections import nats_connection, postgres_pool
from ops.errors import OpsError
from ops.logs import configure_logging
from ops.processes import ACTORS, provision, refused, run_actor, run_gateway
from ops.replay import ReplayReport, progress_printer, replay
from ops.secrets import with_dev_secrets
from ops.stack import EmbeddedStack, read_stack_env
from ops.status import collect, render
from schemas.errors import SettingsError
from schemas.settings import Settings

log = structlog.get_logger("ops")
T = TypeVar("T")


def load_settings(env: Mapping[str, str]) -> Settings:
    """Settings from `CONVEYOR_*`; server URLs not set fall back to a running `stack up`."""
    base = Settings.from_env(env)
    found = read_stack_env(Path(base.data_dir))
    if found:
        # An empty server URL means "the stack's"; any other empty value stays empty
        # (an empty rate limit is no limit).
        given = {k: v for k, v in env.items() if k.startswith("CONVEYOR_")}
        merged = {**found, **{k: v for k, v in given.items() if v or k not in found}}
        base = Settings.from_env(merged)
    return with_dev_secrets(base)


def _run_until_signalled(main: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run `main(stop)`; SIGINT/SIGTERM set `stop`, a second one exits at once."""

    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_signal() -> None:
            if stop.is_set():
                log.warning("second signal: exiting now")
                os._exit(130)
            log.info("stopping")
            stop.set()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal)
        await main(stop)

    try:
        import uvloop

        uvloop.run(runner())
    except ImportError:  # pragma: no cover - uvloop is absent on Windows only
        asyncio.run(runner())


def _echo(line: str) -> None:
    print(line, flush=True)


def cmd_run(settings: Settings, args: argparse.Namespace) -> None:
    with EmbeddedStack(settings, echo=_echo) as stack:
        settings = stack.settings_out
        # The developer is also the operator here: every scope.
        token = issue_token(
            settings, args.owner, scopes=ALL_SCOPES, ttl_seconds=args.token_ttl_hours * 3600
        )

        async def main(stop: asyncio.Event) -> None:
            await provision(settings)
            async with asyncio.TaskGroup() as tg:
                tg.create_task(run_gateway(settings, stop))
                for name in ACTORS:
                    tg.create_task(run_actor(name, settings, stop))
                _echo(f"gateway   http://{settings.http_host}:{settings.http_port}")
                _echo(f"token     {token}")
                _echo(f"          (owner {args.owner!r}; Ctrl-C stops everything)")

        _run_until_signalled(main)


def cmd_stack_up(settings: Settings, args: argparse.Namespace) -> None:
    with EmbeddedStack(settings, echo=_echo) as stack:

        async def main(stop: asyncio.Event) -> None:
            await provision(stack.settings_out)
            _echo(f"stack up; addresses in {Path(settings.data_dir) / 'stack.json'}; Ctrl-C stops")
            await stop.wait()

        _run_until_signalled(main)


def cmd_gateway(settings: Settings, args: argparse.Namespace) -> None:
    async def main(stop: asyncio.Event) -> None:
        if not args.no_provision:
            await provision(settings)
        await run_gateway(settings, stop)

    _run_until_signalled(main)


def cmd_actor(settings: Settings, args: argparse.Namespace) -> None:
    async def main(stop: asyncio.Event) -> None:
        if not args.no_provision:
            await provision(settings)
        await run_actor(args.name, settings, stop)

    _run_until_signalled(main)


def cmd_provision(settings: Settings, args: argparse.Namespace) -> None:
    asyncio.run(provision(settings))
    _echo("provisioned")


async def _nats_client(settings: Settings, work: Callable[[JetStreamContext], Awaitable[T]]) -> T:
    async with nats_connection(settings, name="conveyor-ops", user="ops") as nc:
        return await work(nc.jetstream())


async def _ops_clients(
    settings: Settings, work: Callable[[JetStreamContext, Any], Awaitable[T]]
) -> T:
    """`_nats_client` with a Postgres pool too."""
    async with postgres_pool(settings, size=2) as pool:
        return await _nats_client(settings, lambda js: work(js, pool))


def cmd_replay(settings: Settings, args: argparse.Namespace) -> None:
    since = datetime.fromisoformat(args.since) if args.since else None
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    update, done = progress_printer()

    async def work(js: JetStreamContext, pool: Any) -> ReplayReport:
        actor = PersistenceActor(pool, refused(js, Publisher(js)))
        return await replay(
            js,
            pool,
            actor,
            settings,
            from_seq=args.from_seq,
            since=since,
            rebuild=args.rebuild,
            progress=update,
        )

    try:
        report = asyncio.run(_ops_clients(settings, work))
    finally:
        done()
    rate = report.read / report.seconds if report.seconds else 0.0
    _echo(
        f"replayed {report.read} events (seq {report.first_seq}..{report.last_seq}):"
        f" {report.applied} applied, {report.skipped} already there, {report.dead} dead-lettered"
        f" in {report.seconds:.2f}s ({rate:,.0f} events/s)"
    )


def cmd_status(settings: Settings, args: argparse.Namespace) -> None:
    status = asyncio.run(_ops_clients(settings, lambda js, pool: collect(js, pool, settings)))
    _echo(msgspec.json.encode(status).decode() if args.json else render(status))


def cmd_dlq(settings: Settings, args: argparse.Namespace) -> None:
    async def work(js: JetStreamContext) -> None:
        match args.dlq_command:
            case "list":
                views = [dlq.view(m) async for m in dlq.letters(js, limit=args.limit)]
                if args.json:
                    _echo(msgspec.json.encode(views).decode())
                for v in [] if args.json else views:
                    _echo(
                        f"{v.seq:>6}  {v.actor:<12} {v.original_subject}  "
                        f"tries={v.delivered}  {v.error[:100]}"
                    )
            case "show":
                msg = await dlq.get(js, args.seq)
                _echo(msgspec.json.encode(dlq.view(msg)).decode())
                _echo((msg.data or b"").decode(errors="replace"))
            case "retry" if args.seq:
                for seq in args.seq:
                    new = await dlq.retry(js, seq)
                    _echo(f"dead letter {seq} republished as JOBS sequence {new}")
            case "retry":
                # Every letter, read once; one that can not be retried is skipped, not fatal.
                async for msg in dlq.letters(js):
                    try:
                        new = await dlq.republish(js, msg)
                    except OpsError as exc:
                        _echo(f"skipped: {exc}")
                        continue
                    _echo(f"dead letter {msg.seq} republished as JOBS sequence {new}")
            case "purge":
                _echo(f"purged {await dlq.purge(js, args.seq)} dead letter(s)")

    # NATS only: dead letters must stay reachable while Postgres is down.
    asyncio.run(_nats_client(settings, work))


def cmd_token(settings: Settings, args: argparse.Namespace) -> None:
    if settings.jwt_jwks_url:
        raise SystemExit("tokens come from the issuer of CONVEYOR_JWT_JWKS_URL, not from here")
    scopes = frozenset(args.scope or DEFAULT_SCOPES)
    _echo(issue_token(settings, args.subject, scopes=scopes, ttl_seconds=args.ttl_hours * 3600))


BENCH_SUITES = {
    # Each is `ops/bench/<name>.py` with `add_arguments(parser)` and
    # `run(settings, args, echo) -> Report`; keep their imports at the top light.
    "processing": "the tabular profile against a bare polars read",
    "gateway": "write routes against bare publish-with-ack and FastAPI + Celery",
    "pipeline": "small CSV jobs through all four actors against a Celery chain",
    "persistence": "the persistence actor from a filled stream against a bare COPY",
    "replay": "replay --rebuild of a million events",
    "reads": "GET /v1/jobs/{id} requests/s and latency, cache cold and warm",
}


def cmd_bench(settings: Settings, args: argparse.Namespace) -> None:
    # Imported here: the benchmarks pull in generators and baselines (FastAPI, Celery)
    # the service itself never needs.
    from ops.bench.report import cpu_ticks, steal_percent, write

    suite = importlib.import_module(f"ops.bench.{args.suite}")
    data_dir = Path(settings.data_dir)
    ticks = cpu_ticks()
    report = suite.run(settings, args, _echo)
    report = msgspec.structs.replace(report, steal_percent=steal_percent(ticks, cpu_ticks()))
    _echo(f"machine: {report.cores} cores ({report.cpu_model}), {report.memory_gb} GB")
    if report.steal_percent is not None:
        _echo(f"CPU time taken by the hypervisor while the suite ran: {report.steal_percent}%")
    stamp = report.date.replace(":", "").replace("-", "")
    target = Path(args.out) if args.out else data_dir / "bench" / f"{args.suite}-{stamp}.json"
    _echo(f"figures written to {write(report, target)}")


def _require_servers(settings: Settings) -> None:
    missing = [
        name
        for name, value in (
            ("CONVEYOR_NATS_URL", settings.nats_url),
            ("CONVEYOR_DATABASE_URL", settings.database_url),
            ("CONVEYOR_REDIS_URL", settings.redis_url),
            ("CONVEYOR_S3_ENDPOINT", settings.s3_endpoint),
        )
        if not value
    ]
    if missing:
        raise OpsError(
            f"{', '.join(missing)} not set and no `conveyor stack up` running "
            f"(looked in {Path(settings.data_dir) / 'stack.json'})"
        )


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="conveyor", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="embedded stack (for unset URLs) + gateway + all actors")
    run.add_argument("--owner", default="dev", help="subject of the printed token")
    run.add_argument("--token-ttl-hours", type=int, default=24)
    run.set_defaults(func=cmd_run, needs_servers=False)

    stack = sub.add_parser("stack", help="the embedded stack alone")
    stack_sub = stack.add_subparsers(dest="stack_command", required=True)
    up = stack_sub.add_parser("up", help="start it, provision it, keep it until Ctrl-C")
    up.set_defaults(func=cmd_stack_up, needs_servers=False)

    gw = sub.add_parser("gateway", help="serve HTTP on CONVEYOR_HTTP_HOST:CONVEYOR_HTTP_PORT")
    gw.add_argument("--no-provision", action="store_true")
    gw.set_defaults(func=cmd_gateway, needs_servers=True)

    actor = sub.add_parser("actor", help="run one actor")
    actor.add_argument("name", choices=ACTORS)
    actor.add_argument("--no-provision", action="store_true")
    actor.set_defaults(func=cmd_actor, needs_servers=True)

    prov = sub.add_parser("provision", help="streams, consumers, buckets, migrations")
    prov.set_defaults(func=cmd_provision, needs_servers=True)

    rep = sub.add_parser("replay", help="re-apply the JOBS stream to Postgres, in order")
    where = rep.add_mutually_exclusive_group()
    where.add_argument("--from-seq", type=int, help="start at this stream sequence")
    where.add_argument("--since", help="start at this time (ISO 8601; UTC if no zone)")
    where.add_argument(
        "--rebuild", action="store_true", help="empty the projections, replay from sequence 1"
    )
    rep.set_defaults(func=cmd_replay, needs_servers=True)

    st = sub.add_parser("status", help="streams, consumers, persistence lag, dead letters")
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=cmd_status, needs_servers=True)

    dl = sub.add_parser("dlq", help="dead letters")
    dl_sub = dl.add_subparsers(dest="dlq_command", required=True)
    dl_list = dl_sub.add_parser("list")
    dl_list.add_argument("--limit", type=int, default=100)
    dl_list.add_argument("--json", action="store_true")
    dl_show = dl_sub.add_parser("show")
    dl_show.add_argument("seq", type=int)
    dl_retry = dl_sub.add_parser(
        "retry", help="republish to the original subject (all if none given)"
    )
    dl_retry.add_argument("seq", type=int, nargs="*")
    dl_purge = dl_sub.add_parser("purge", help="delete one dead letter, or all")
    dl_purge.add_argument("seq", type=int, nargs="?")
    dl.set_defaults(func=cmd_dlq, needs_servers=True)

    bench = sub.add_parser("bench", help="measure a suite against its ceiling; JSON figures")
    suites = bench.add_subparsers(dest="suite", required=True)
    for name, about in BENCH_SUITES.items():
        suite = suites.add_parser(name, help=about)
        suite.add_argument("--out", help="JSON file for the figures (default: DATA_DIR/bench/)")
        importlib.import_module(f"ops.bench.{name}").add_arguments(suite)
    bench.set_defaults(func=cmd_bench, needs_servers=False)

    token = sub.add_parser("token", help="print a bearer token for SUBJECT")
    token.add_argument("subject")
    token.add_argument("--ttl-hours", type=int, default=24)
    token.add_argument(
        "--scope",
        action="append",
        choices=sorted(ALL_SCOPES),
        help=f"repeat for several (default: {' '.join(sorted(DEFAULT_SCOPES))})",
    )
    token.set_defaults(func=cmd_token, needs_servers=False)
    return p


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    try:
        settings = load_settings(os.environ)
    except SettingsError as exc:
        sys.exit(f"conveyor: configuration: {exc}")
    configure_logging(settings)
    try:
        if args.needs_servers:
            _require_servers(settings)
        args.func(settings, args)
    except OpsError as exc:
        sys.exit(f"conveyor: {exc}")
    except KeyboardInterrupt:
        sys.exit(130)
