"""What each process runs: the gateway or one actor, with its clients, until `stop`."""

from __future__ import annotations

import asyncio
import contextlib
from contextlib import AsyncExitStack
from pathlib import Path

import msgspec
import structlog
from nats.js import JetStreamContext

from actors.deadletters import dead_letter
from actors.inbox import Inbox
from actors.notification import NotificationActor
from actors.ordered import OrderedRuntime
from actors.persistence import DeadLetter, PersistenceActor, Stored
from actors.processing import ProcessingActor
from actors.processors.registry import load_processors
from actors.publisher import Publisher
from actors.runtime import Runnable, Runtime, run_until_stopped
from actors.upload import UploadActor
from actors.webhooks import WebhooksActor
from gateway.app import serve
from gateway.cache import JobCache
from gateway.presign import Presigner
from gateway.ratelimit import RateLimits
from gateway.services import Services
from gateway.sockets import OpenSockets
from gateway.upload_policy import ContentTypes
from gateway.uploads import recent_uploads
from ops.connections import (
    nats_connection,
    postgres_pool,
    redis_client,
    s3_client,
    token_verifier,
    webhook_session,
)
from ops.nats_auth import user_named
from ops.provision import migrate, provision_bucket, provision_nats
from schemas import subjects
from schemas.events import TERMINAL, Envelope, Failed, follow_up
from schemas.settings import Settings

log = structlog.get_logger("ops")

ACTORS = ("upload", "processing", "persistence", "notification", "webhooks")


async def provision(settings: Settings) -> None:
    """Streams, consumers, KV bucket, S3 bucket and migrations; safe to run any time."""
    async with AsyncExitStack() as stack:
        nc = await stack.enter_async_context(
            nats_connection(settings, name="conveyor-provision", user="ops")
        )
        await provision_nats(nc.jetstream(), settings)
        s3 = await stack.enter_async_context(s3_client(settings))
        await provision_bucket(s3, settings.s3_bucket)
        pool = await stack.enter_async_context(postgres_pool(settings, size=1))
        async with pool.acquire() as conn:
            await migrate(conn)


async def _watch_connection(closed: asyncio.Event, stop: asyncio.Event, what: str) -> None:
    await closed.wait()
    if not stop.is_set():
        # Closed for good (not by us): exit non-zero so a supervisor restarts us.
        log.error("NATS connection closed for good", process=what)
        stop.set()
        raise SystemExit(1)


async def run_gateway(settings: Settings, stop: asyncio.Event) -> None:
    closed = asyncio.Event()
    async with AsyncExitStack() as stack:
        nc = await stack.enter_async_context(
            nats_connection(settings, name="conveyor-gateway", user="gateway", closed=closed)
        )
        js = nc.jetstream()
        redis = await stack.enter_async_context(redis_client(settings))
        inbox = Inbox(nc)
        services = Services(
            settings=settings,
            nc=nc,
            js=js,
            idempotency=await js.key_value(subjects.IDEMPOTENCY_BUCKET),
            publisher=Publisher(js, inbox=inbox),
            inbox=inbox,
            pool=await stack.enter_async_context(postgres_pool(settings)),
            redis=redis,
            s3=await stack.enter_async_context(s3_client(settings)),
            tokens=await stack.enter_async_context(token_verifier(settings)),
            rate_limits=RateLimits(redis, settings),
            content_types=ContentTypes(settings.allowed_content_types),
            job_cache=JobCache(redis, ttl_seconds=settings.job_cache_seconds),
            presigner=Presigner(settings),
            recent_uploads=recent_uploads(),
            sockets=OpenSockets(settings.max_sockets_per_owner),
            webhooks=await js.key_value(subjects.WEBHOOKS_BUCKET),
        )
        async with asyncio.TaskGroup() as tg:
            watcher = tg.create_task(_watch_connection(closed, stop, "gateway"))
            await serve(services, stop, host=settings.http_host, port=settings.http_port)
            watcher.cancel()


def refused(js: JetStreamContext, publisher: Publisher) -> DeadLetter:
    """Dead-letters what Postgres refuses to store (persistence's only give-up), and
    ends the job as `failed` so its owner and subscribers learn why."""
    decoder = msgspec.json.Decoder(Envelope)

    async def send(message: Stored, reason: str) -> None:
        event: Envelope | None = None
        with contextlib.suppress(msgspec.DecodeError):
            event = decoder.decode(message.data)
        job_id = event.job_id if event is not None else None
        await dead_letter(
            js,
            actor=subjects.PERSISTENCE,
            stored_subject=message.subject,
            stream_seq=message.seq,
            delivered=1,
            data=message.data,
            headers=message.headers,
            reason=reason,
            job_id=job_id,
        )
        # Unlike a give-up elsewhere (`fail_job`), even an ended job is marked failed: part
        # of its history could not be stored, and its owner should learn that.
        if event is not None and event.type not in TERMINAL:
            # Printable only: the reason may quote the very text Postgres refused.
            text = "".join(c for c in reason if c.isprintable())[:500]
            failed = Failed(reason=f"could not be stored: {text}", stage=subjects.PERSISTENCE)
            await publisher.publish(follow_up(event, failed, source="persistence"))

    return send


async def run_actor(name: str, settings: Settings, stop: asyncio.Event) -> None:
    closed = asyncio.Event()
    async with AsyncExitStack() as stack:
        # Each actor is its own NATS user, of the same name.
        nc = await stack.enter_async_context(
            nats_connection(settings, name=f"conveyor-{name}", user=user_named(name), closed=closed)
        )
        js = nc.jetstream()
        publisher = Publisher(js)
        runner: Runnable
        match name:
            case "upload":
                s3 = await stack.enter_async_context(s3_client(settings))
                runner = Runtime(
                    UploadActor(s3, settings.s3_bucket, publisher), js, publisher, settings
                )
            case "processing":
                s3 = await stack.enter_async_context(s3_client(settings))
                work = Path(settings.data_dir) / "work"
                work.mkdir(parents=True, exist_ok=True)
                actor = ProcessingActor(s3, settings.s3_bucket, load_processors(), work_dir=work)
                runner = Runtime(actor, js, publisher, settings)
            case "persistence":
                pool = await stack.enter_async_context(postgres_pool(settings, size=4))
                persistence = PersistenceActor(pool, refused(js, publisher))
                runner = OrderedRuntime(persistence, js, settings)
            case "notification":
                runner = Runtime(NotificationActor(nc), js, publisher, settings)
            case "webhooks":
                session = await stack.enter_async_context(webhook_session(settings))
                kv = await js.key_value(subjects.WEBHOOKS_BUCKET)
                runner = Runtime(WebhooksActor(kv, session, settings), js, publisher, settings)
            case _:
                raise ValueError(f"unknown actor {name!r}; one of {', '.join(ACTORS)}")
        async with asyncio.TaskGroup() as tg:
            watcher = tg.create_task(_watch_connection(closed, stop, name))
            await run_until_stopped(runner, stop, settings.shutdown_grace_seconds)
            watcher.cancel()
