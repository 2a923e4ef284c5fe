"""Provisioning is idempotent and applies what `ops.provision` declares."""

from __future__ import annotations

from conftest import connect_as
from nats.js.api import RetentionPolicy

from ops.connections import postgres_pool
from ops.processes import provision
from ops.provision import DAY, migrate, migrations, uploads_bucket
from schemas import subjects
from schemas.settings import Settings


async def test_provision_twice_changes_nothing(provisioned: Settings) -> None:
    await provision(provisioned)
    async with postgres_pool(provisioned, size=1) as pool:
        async with pool.acquire() as conn:
            assert await migrate(conn) == []
        recorded = [
            r["version"]
            for r in await pool.fetch("SELECT version FROM schema_migrations ORDER BY version")
        ]
    assert recorded == [version for version, _ in migrations()]


async def test_streams_are_replayable_and_deduplicating(provisioned: Settings) -> None:
    nc = await connect_as(provisioned, "ops")
    try:
        js = nc.jetstream()
        info = await js.stream_info(subjects.JOBS_STREAM)
        assert info.config.retention == RetentionPolicy.LIMITS
        assert info.config.subjects == [subjects.JOBS_SUBJECTS]
        transform = info.config.subject_transform
        assert transform is not None
        assert (transform.src, transform.dest) == subjects.partition_transform(
            provisioned.partitions
        )
        assert info.config.duplicate_window == 120.0
        assert info.config.max_age == provisioned.stream_max_age_days * 24 * 3600
        for name, filter_subject in subjects.CONSUMER_FILTERS.items():
            consumer = await js.consumer_info(subjects.JOBS_STREAM, name)
            assert consumer.config.durable_name == name
            assert consumer.config.filter_subject == filter_subject
            assert consumer.config.max_deliver == -1  # the runtime counts tries
        assert (await js.stream_info(subjects.DEAD_LETTER_STREAM)).config.subjects == ["dlq.>"]
        await js.key_value(subjects.UPLOADS_BUCKET)
        await js.key_value(subjects.LEASES_BUCKET)
    finally:
        await nc.close()


def test_upload_tickets_never_outlive_the_events_that_complete_them() -> None:
    # A pure function of the settings: no server needed.
    assert uploads_bucket(Settings()).ttl == 7 * DAY
    short = Settings(stream_max_age_days=2.0)
    assert uploads_bucket(short).ttl == 2 * DAY


async def test_only_the_uploads_bucket_answers_direct_gets(provisioned: Settings) -> None:
    # The others are read by nats-py's KeyValue, which would then read any replica.
    nc = await connect_as(provisioned, "ops")
    try:
        js = nc.jetstream()
        buckets = (
            subjects.UPLOADS_BUCKET,
            subjects.LEASES_BUCKET,
            subjects.IDEMPOTENCY_BUCKET,
            subjects.WEBHOOKS_BUCKET,
        )
        allowed = {
            b: bool((await js.stream_info(f"{subjects.KV_STREAM_PREFIX}{b}")).config.allow_direct)
            for b in buckets
        }
    finally:
        await nc.close()
    assert allowed == {b: b == subjects.UPLOADS_BUCKET for b in buckets}
