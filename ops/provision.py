"""Idempotent provisioning, run at every start: streams, consumers, KV bucket,
the S3 bucket and SQL migrations. Every setting of the streams is declared here."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from importlib import resources
from typing import TYPE_CHECKING, Any

import asyncpg
import structlog
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    KeyValueConfig,
    RetentionPolicy,
    StorageType,
    StreamConfig,
    SubjectTransform,
)
from nats.js.errors import NotFoundError, ServiceUnavailableError

from actors.leases import LEASE_TTL_SECONDS
from ops.errors import ProvisionError
from schemas import subjects
from schemas.settings import Settings

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    # A pooled connection or a plain one: both run the same statements.
    Connection = asyncpg.Connection[Any] | PoolConnectionProxy[Any]
    from types_aiobotocore_s3 import S3Client

log = structlog.get_logger("ops.provision")

DAY = 24 * 3600.0


def jobs_max_age(settings: Settings) -> float:
    """Seconds JOBS keeps an event."""
    return settings.stream_max_age_days * DAY


def jobs_stream(settings: Settings) -> StreamConfig:
    return StreamConfig(
        name=subjects.JOBS_STREAM,
        description="Every job event; the event store that `conveyor replay` rebuilds from.",
        subjects=[subjects.JOBS_SUBJECTS],
        # Stored as jobs.<job_id>.<type>.<partition>: one job, one partition.
        subject_transform=SubjectTransform(*subjects.partition_transform(settings.partitions)),
        # Limits retention (not work-queue): delivered events stay, so ops can replay them.
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        max_age=jobs_max_age(settings),
        # When a limit is hit the oldest events go, never new writes refused.
        discard=DiscardPolicy.OLD,
        # Retried publishes (same Nats-Msg-Id) within this window are stored once.
        duplicate_window=120.0,
        num_replicas=settings.stream_replicas,
    )


def dead_letter_stream(settings: Settings) -> StreamConfig:
    return StreamConfig(
        name=subjects.DEAD_LETTER_STREAM,
        description="Messages an actor gave up on, with the error; see `conveyor dlq`.",
        subjects=[subjects.DEAD_LETTER_SUBJECTS],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        max_age=90 * DAY,
        num_replicas=settings.stream_replicas,
    )


# Where a durable consumer differs from the rest, by name.
CONSUMER_OVERRIDES: dict[str, dict[str, Any]] = {
    subjects.WEBHOOKS_CONSUMER: {
        # From the events stored after it was first provisioned: a deployment gaining
        # webhooks does not send its history to anyone.
        "deliver_policy": DeliverPolicy.NEW,
        # Its retries wait (nak'ed with a delay) as pending messages: a receiver down
        # for hours holds its events there, and at the bound every owner waits.
        "max_ack_pending": 50_000,
    },
}


def consumer(name: str, settings: Settings) -> ConsumerConfig:
    config = ConsumerConfig(
        name=name,
        durable_name=name,
        description=f"the {name} actor",
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        filter_subject=subjects.CONSUMER_FILTERS[name],
        # Redelivery after this long without ack or progress; the runtime signals
        # progress every third of it, so only a dead worker's messages move on.
        ack_wait=settings.ack_wait_seconds,
        # Unlimited on the server: the runtime counts tries (CONVEYOR_MAX_DELIVER) and
        # dead-letters. A server-side limit would abandon, silently, a message whose
        # worker died on its last try.
        max_deliver=-1,
        # Bounds the work one slow actor can hold; the runtime fetches far fewer.
        max_ack_pending=1000,
        # No `backoff` list: it would also replace ack_wait for first deliveries. The
        # runtime naks with its own growing delay (1, 2, 4 ... 30 s) instead.
    )
    return dataclasses.replace(config, **CONSUMER_OVERRIDES.get(name, {}))


def leases_bucket(settings: Settings) -> KeyValueConfig:
    return KeyValueConfig(
        bucket=subjects.LEASES_BUCKET,
        description="Which persistence process applies which partition.",
        history=1,
        ttl=LEASE_TTL_SECONDS,
        # File, not memory: a memory bucket is gone once NATS restarts, and the running
        # persistence processes could then never renew or hand over a partition again.
        storage=StorageType.FILE,
        replicas=settings.stream_replicas,
    )


def idempotency_bucket(settings: Settings) -> KeyValueConfig:
    return KeyValueConfig(
        bucket=subjects.IDEMPOTENCY_BUCKET,
        description="First answers to POSTs with an Idempotency-Key.",
        history=1,
        # A client retrying within a day gets the first answer again.
        ttl=DAY,
        storage=StorageType.FILE,
        replicas=settings.stream_replicas,
    )


def webhooks_bucket(settings: Settings) -> KeyValueConfig:
    return KeyValueConfig(
        bucket=subjects.WEBHOOKS_BUCKET,
        description="Each owner's webhooks: where job events are POSTed.",
        history=1,
        storage=StorageType.FILE,
        replicas=settings.stream_replicas,
    )


def uploads_bucket(settings: Settings) -> KeyValueConfig:
    return KeyValueConfig(
        bucket=subjects.UPLOADS_BUCKET,
        description="Upload tickets between POST /v1/uploads and .../complete.",
        history=1,
        # Never longer than JOBS keeps events: whether a ticket was completed is its
        # job's `uploaded` event, which must outlive it (gateway.uploads).
        ttl=min(7 * DAY, jobs_max_age(settings)),
        storage=StorageType.FILE,
        replicas=settings.stream_replicas,
        # Any replica answers the gateway's direct gets (gateway.uploads.read_upload):
        # records are written once. Not the other buckets: they are read by nats-py's
        # KeyValue, which turns to direct gets where a bucket allows them, and their
        # readers compare-and-set on what they read, where a replica's late answer
        # would be a false conflict.
        direct=True,
    )


async def provision_nats(js: JetStreamContext, settings: Settings, *, within: float = 60.0) -> None:
    """Apply streams, consumers and the KV bucket; waits for JetStream to have a leader."""
    deadline = time.monotonic() + within
    while True:
        try:
            await _provision_nats(js, settings)
            return
        except (ServiceUnavailableError, NatsTimeoutError, NoRespondersError) as exc:
            # A cluster that just started may not have elected a JetStream leader yet.
            if time.monotonic() > deadline:
                raise ProvisionError(f"JetStream not available: {exc!r}", what="nats") from exc
            await asyncio.sleep(0.5)


async def _provision_nats(js: JetStreamContext, settings: Settings) -> None:
    for config in (jobs_stream(settings), dead_letter_stream(settings)):
        try:
            await js.stream_info(config.name or "")
        except NotFoundError:
            await js.add_stream(config)
        else:
            await js.update_stream(config)
    for name in subjects.CONSUMER_FILTERS:
        await js.add_consumer(subjects.JOBS_STREAM, consumer(name, settings))
    buckets = (
        uploads_bucket(settings),
        leases_bucket(settings),
        idempotency_bucket(settings),
        webhooks_bucket(settings),
    )
    for bucket in buckets:
        try:
            config = (await js.stream_info(f"{subjects.KV_STREAM_PREFIX}{bucket.bucket}")).config
        except NotFoundError:
            await js.create_key_value(bucket)
            continue
        # nats-py updates no bucket: whether direct gets are allowed, as declared, is
        # applied to a bucket made before (the uploads bucket before it asked for them).
        if bool(config.allow_direct) != bool(bucket.direct):
            await js.update_stream(dataclasses.replace(config, allow_direct=bool(bucket.direct)))


async def provision_bucket(s3: S3Client, bucket: str, *, within: float = 30.0) -> None:
    """Create the bucket if missing; a fresh S3 server may refuse writes for a moment."""
    deadline = time.monotonic() + within
    while True:
        try:
            await s3.head_bucket(Bucket=bucket)
            return
        except Exception as exc:
            code = getattr(exc, "response", {}).get("Error", {}).get("Code")
            if code not in ("404", "NoSuchBucket", "NotFound"):
                last: Exception = exc
            else:
                try:
                    await s3.create_bucket(Bucket=bucket)
                    return
                except Exception as create_exc:
                    last = create_exc
        if time.monotonic() > deadline:
            raise ProvisionError(f"bucket {bucket!r}: {last}", what="s3")
        await asyncio.sleep(0.2)


def migrations() -> list[tuple[str, str]]:
    """Ordered (version, sql) pairs from ops/migrations/NNNN_name.sql."""
    folder = resources.files("ops") / "migrations"
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".sql")), key=lambda f: f.name)
    return [(f.name.removesuffix(".sql"), f.read_text()) for f in files]


# Any fixed number shared by every Conveyor process: serialises concurrent migrators.
_MIGRATION_LOCK = 0x436F6E76


async def migrate(conn: Connection) -> list[str]:
    """Apply the migrations not yet recorded; returns the versions applied now."""
    applied_now: list[str] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
        # Set after the advisory lock, which may rightly wait for another migrator: a
        # migration that waits for a table in use gives up rather than hold every reader
        # and writer of it behind its own lock request. Provisioning can run again.
        await conn.execute("SET LOCAL lock_timeout = '10s'")
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for version, sql in migrations():
            if version in done:
                continue
            await conn.execute(sql)
            await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", version)
            applied_now.append(version)
    if applied_now:
        log.info("migrations applied", versions=applied_now)
    return applied_now
