"""`conveyor`: the one entry point. The only module that reads the process environment."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

import structlog

from gateway.auth import issue_token
from ops.errors import OpsError
from ops.logs import configure_logging
from ops.processes import ACTORS, provision, run_actor, run_gateway
from ops.secrets import with_dev_secrets
from ops.stack import EmbeddedStack, read_stack_env
from schemas.errors import SettingsError
from schemas.settings import Settings

log = structlog.get_logger("ops")


def load_settings(env: Mapping[str, str]) -> Settings:
    """Settings from `CONVEYOR_*`; server URLs not set fall back to a running `stack up`."""
    base = Settings.from_env(env)
    found = read_stack_env(Path(base.data_dir))
    if found:
        merged = {**found, **{k: v for k, v in env.items() if k.startswith("CONVEYOR_") and v}}
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
        token = issue_token(settings, args.owner, ttl_seconds=args.token_ttl_hours * 3600)

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


def cmd_token(settings: Settings, args: argparse.Namespace) -> None:
    _echo(issue_token(settings, args.subject, ttl_seconds=args.ttl_hours * 3600))


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

    token = sub.add_parser("token", help="print a bearer token for SUBJECT")
    token.add_argument("subject")
    token.add_argument("--ttl-hours", type=int, default=24)
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
