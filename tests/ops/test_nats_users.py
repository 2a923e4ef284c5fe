"""NATS users: each one is refused what it should not do, and may do what it needs.

A refusal is the server's own "Permissions Violation", seen through the client's
error callback (never just a timeout); the server logs the same line. Positive
checks use the real client calls the processes make.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import nats
import pytest
import yaml
from conftest import Api, connect_as
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.errors import NoServersError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import APIError, KeyNotFoundError, NotFoundError

from ops import nats_auth
from ops.connections import nats_connection, postgres_pool
from ops.status import collect
from schemas import subjects
from schemas.settings import Settings
from schemas.webhooks import OwnerWebhooks
from tests.waits import wait_for_value

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "ops" / "nats" / "auth.conf"
COMPOSE = ROOT / "compose.yaml"
JOBS = subjects.JOBS_STREAM
API = subjects.JS_API
# Answers in the wrong stream's name: proves the publish reached JOBS, stores nothing.
NOT_JOBS = "NOT_JOBS"
WRONG_STREAM = 10060
# The name these connections give the server, so its log tells their (wanted)
# violations from any a Conveyor process would cause.
CLIENT = "nats-users-test"


@dataclass
class As:
    """One connection as one user, with the errors the server sent it."""

    user: nats_auth.User
    nc: NATS
    errors: list[str] = field(default_factory=list)

    async def violation(self, kind: str, subject: str) -> None:
        """Wait (with a deadline) for the server's refusal of `kind` on `subject`."""
        wanted = f'permissions violation for {kind} to "{subject}"'.lower()

        async def seen() -> bool | None:
            return True if any(wanted in e.lower() for e in self.errors) else None

        await wait_for_value(seen, within=5, what=f"{self.user}: {wanted}")

    async def refused_publish(self, subject: str, payload: bytes = b"{}") -> None:
        # With a reply inbox, as a request would: the refusal comes back instead.
        await self.nc.publish(subject, payload, reply=self.nc.new_inbox())
        await self.nc.flush()
        await self.violation("publish", subject)

    async def refused_subscribe(self, subject: str) -> None:
        await self.nc.subscribe(subject)
        await self.nc.flush()
        await self.violation("subscription", subject)

    def assert_clean(self) -> None:
        """Nothing refused: the positive checks needed no more than was granted."""
        assert [e for e in self.errors if "permissions violation" in e.lower()] == []


@pytest.fixture
async def login(provisioned: Settings) -> AsyncIterator[Callable[[nats_auth.User], Awaitable[As]]]:
    opened: list[As] = []

    async def connect(user: nats_auth.User) -> As:
        errors: list[str] = []

        async def on_error(exc: Exception) -> None:
            errors.append(str(exc))

        nc = await connect_as(
            provisioned, user, name=CLIENT, error_cb=on_error, max_reconnect_attempts=0
        )
        opened.append(As(user, nc, errors))
        return opened[-1]

    yield connect
    for a in opened:
        await a.nc.close()


def job_event_subject(event_type: str) -> str:
    return subjects.job_event(uuid.uuid4(), event_type)


async def reaches_jobs(a: As, subject: str) -> None:
    """A publish to `subject` is let through to the JOBS stream (stored nowhere)."""
    with pytest.raises(APIError) as refused:
        await a.nc.jetstream().publish(subject, b"{}", stream=NOT_JOBS, timeout=5)
    assert refused.value.err_code == WRONG_STREAM
    a.assert_clean()


async def first_seqs(ops: NATS) -> dict[str, int]:
    """Each stream's first sequence, as `ops` (the `nc` fixture) sees it."""
    js = ops.jetstream()
    return {
        name: (await js.stream_info(name)).state.first_seq
        for name in (JOBS, subjects.DEAD_LETTER_STREAM)
    }


async def durable_untouched(ops: NATS) -> None:
    """Every durable consumer still as provisioned, as `ops` (the `nc` fixture) sees it."""
    for name, wanted in subjects.CONSUMER_FILTERS.items():
        info = await ops.jetstream().consumer_info(JOBS, name)
        assert info.config.filter_subject == wanted
        assert info.config.durable_name == name


# -- the configuration --------------------------------------------------------


def test_committed_config_is_the_generated_one() -> None:
    # compose.yaml mounts this file; regenerate it with `python -m ops.nats_auth`.
    assert COMMITTED.read_text() == nats_auth.render()


def test_every_user_is_in_the_config_with_its_password_variable() -> None:
    text = nats_auth.render()
    for user in nats_auth.USERS:
        assert f"user: {user}\n" in text
        assert f"password: ${nats_auth.password_env(user)}\n" in text
    # Nobody may read another's replies.
    assert '"_INBOX.>"' not in text


def test_compose_nodes_use_the_config_and_each_service_gets_only_its_password() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    services: dict[str, dict[str, Any]] = compose["services"]
    every = {nats_auth.password_env(u) for u in nats_auth.USERS}
    nodes = [name for name in services if name.startswith("nats-")]
    assert nodes
    for name in nodes:
        node = services[name]
        config = node["command"][node["command"].index("-c") + 1]
        assert f"./{COMMITTED.relative_to(ROOT)}:{config}:ro" in node["volumes"]
        assert set(node["environment"]) == every
    own: dict[str, nats_auth.User] = {
        "provision": "ops",
        "gateway": "gateway",
        "upload": "upload",
        "processing": "processing",
        "persistence": "persistence",
        "notification": "notification",
        "webhooks": "webhooks",
    }
    for name, user in own.items():
        given = {k for k in services[name]["environment"] if k in every}
        assert given == {nats_auth.password_env(user)}, name


async def test_no_credentials_or_a_wrong_password_are_refused(provisioned: Settings) -> None:
    with pytest.raises((NoServersError, nats.errors.Error)):
        await nats.connect(provisioned.nats_url, max_reconnect_attempts=0, allow_reconnect=False)
    with pytest.raises((NoServersError, nats.errors.Error)):
        await nats.connect(
            provisioned.nats_url,
            user="ops",
            password=nats_auth.password_of(provisioned, "gateway"),
            max_reconnect_attempts=0,
            allow_reconnect=False,
        )


async def test_processes_connect_as_their_user_with_their_own_inboxes(
    provisioned: Settings,
) -> None:
    for user in nats_auth.USERS:
        async with nats_connection(provisioned, name=f"test-{user}", user=user) as nc:
            assert nc.new_inbox().startswith(f"{subjects.inbox_prefix(user)}.")
            await nc.flush()


# -- refusals every user shares -----------------------------------------------

OTHERS = [u for u in nats_auth.USERS if u != "ops"]


@pytest.mark.parametrize("user", nats_auth.USERS)
async def test_nobody_reads_the_shared_inbox_or_another_users(
    user: nats_auth.User, login: Callable[[nats_auth.User], Awaitable[As]]
) -> None:
    a = await login(user)
    await a.refused_subscribe("_INBOX.>")
    other = "ops" if user != "ops" else "gateway"
    await a.refused_subscribe(f"{subjects.inbox_prefix(other)}.>")


@pytest.mark.parametrize("user", OTHERS)
async def test_only_ops_deletes_or_purges(
    user: nats_auth.User, login: Callable[[nats_auth.User], Awaitable[As]], nc: NATS
) -> None:
    a = await login(user)
    before = await first_seqs(nc)
    for subject in (
        f"{API}.STREAM.DELETE.{JOBS}",
        f"{API}.STREAM.PURGE.{JOBS}",
        f"{API}.STREAM.MSG.DELETE.{JOBS}",
        f"{API}.STREAM.DELETE.{subjects.DEAD_LETTER_STREAM}",
        f"{API}.STREAM.UPDATE.{JOBS}",
        f"{API}.CONSUMER.DELETE.{JOBS}.{subjects.UPLOAD_CONSUMER}",
        f"{API}.CONSUMER.DURABLE.CREATE.{JOBS}.{subjects.UPLOAD_CONSUMER}",
        # The legacy unnamed create names its consumer in the body: it could rewrite a
        # durable consumer, so only ops has it.
        f"{API}.CONSUMER.CREATE.{JOBS}",
    ):
        await a.refused_publish(subject)
    assert (await nc.jetstream().stream_info(JOBS)).config.name == JOBS
    # Nothing purged or deleted (either moves a stream's first sequence), no durable changed.
    assert await first_seqs(nc) == before
    await durable_untouched(nc)


# -- each user ----------------------------------------------------------------


async def test_gateway(
    login: Callable[[nats_auth.User], Awaitable[As]], provisioned: Settings, nc: NATS
) -> None:
    a = await login("gateway")
    js = a.nc.jetstream()
    # What it needs: its two buckets, JOBS by subject, `uploaded` events, the relay.
    uploads = await js.key_value(subjects.UPLOADS_BUCKET)
    # By direct get: nats-py's KeyValue uses it where the bucket allows it, as this one does.
    with pytest.raises(KeyNotFoundError):
        await uploads.get(str(uuid.uuid4()))
    idempotency = await js.key_value(subjects.IDEMPOTENCY_BUCKET)
    key = f"nats-users-{uuid.uuid4().hex}"
    revision = await idempotency.create(key, b"x")
    await idempotency.delete(key, last=revision)
    with pytest.raises(NotFoundError):
        await js.get_last_msg(JOBS, subjects.stored_job_events(uuid.uuid4()))
    await a.nc.subscribe(subjects.notify_job_all(uuid.uuid4()))
    await reaches_jobs(a, job_event_subject("uploaded"))
    # GET /v1/admin/status: the state of streams, consumers, leases and partitions.
    async with postgres_pool(provisioned, size=1) as pool:
        status = await collect(js, pool, provisioned, lag=False)
    assert [s.name for s in status.streams] == [JOBS, subjects.DEAD_LETTER_STREAM]
    assert {p.lag for p in status.persistence} == {None}
    a.assert_clean()
    # Not: the actors' events, their consumers, the relay, the leases.
    await a.refused_publish(job_event_subject("processed"))
    await a.refused_publish(job_event_subject("verified"))
    await a.refused_publish(f"{API}.CONSUMER.MSG.NEXT.{JOBS}.{subjects.PROCESSING_CONSUMER}")
    await a.refused_publish(subjects.notify_job(uuid.uuid4(), "processed"))
    await a.refused_publish(f"{subjects.KV_PREFIX}.{subjects.LEASES_BUCKET}.x")
    await a.refused_publish(subjects.dead_letter("upload", uuid.uuid4()))
    durable = subjects.UPLOAD_CONSUMER
    await a.refused_publish(
        f"{API}.CONSUMER.CREATE.{JOBS}.{durable}.{subjects.stored_partition(0)}"
    )
    await a.refused_publish(f"{API}.CONSUMER.INFO.{JOBS}.some-ephemeral")
    # No consumers at all: one with a deliver subject would publish wherever it says.
    await a.refused_publish(f"{API}.CONSUMER.CREATE.{JOBS}.mine.{subjects.STORED_JOBS}")
    await durable_untouched(nc)


async def test_upload_actor(login: Callable[[nats_auth.User], Awaitable[As]]) -> None:
    a = await login("upload")
    js = a.nc.jetstream()
    # What it needs: its own durable consumer (bound, not fetched from here: the live
    # service's actor owns its messages), its events, JOBS lookups.
    sub = await js.pull_subscribe_bind(durable=subjects.UPLOAD_CONSUMER, stream=JOBS)
    info = await sub.consumer_info()
    assert info.name == subjects.UPLOAD_CONSUMER
    with pytest.raises(NotFoundError):
        await js.get_last_msg(JOBS, subjects.stored_job_events(uuid.uuid4()))
    await reaches_jobs(a, job_event_subject("verified"))
    # Not: another actor's consumer or events, the relay, anyone's bucket.
    await a.refused_publish(f"{API}.CONSUMER.MSG.NEXT.{JOBS}.{subjects.PROCESSING_CONSUMER}")
    await a.refused_publish(f"{subjects.JS_ACK}.{JOBS}.{subjects.PROCESSING_CONSUMER}.1.1.1.1.0")
    await a.refused_publish(job_event_subject("uploaded"))
    await a.refused_publish(job_event_subject("processed"))
    await a.refused_publish(subjects.notify_job(uuid.uuid4(), "verified"))
    await a.refused_publish(subjects.dead_letter("processing", uuid.uuid4()))
    await a.refused_publish(f"{API}.STREAM.INFO.KV_{subjects.UPLOADS_BUCKET}")


async def test_processing_actor(login: Callable[[nats_auth.User], Awaitable[As]]) -> None:
    a = await login("processing")
    js = a.nc.jetstream()
    sub = await js.pull_subscribe_bind(durable=subjects.PROCESSING_CONSUMER, stream=JOBS)
    assert (await sub.consumer_info()).name == subjects.PROCESSING_CONSUMER
    await reaches_jobs(a, job_event_subject("processed"))
    await a.refused_publish(f"{API}.CONSUMER.MSG.NEXT.{JOBS}.{subjects.UPLOAD_CONSUMER}")
    await a.refused_publish(job_event_subject("verified"))
    await a.refused_publish(job_event_subject("uploaded"))
    await a.refused_publish(subjects.notify_job(uuid.uuid4(), "processed"))
    await a.refused_publish(f"{subjects.KV_PREFIX}.{subjects.UPLOADS_BUCKET}.x")


async def test_persistence_actor(
    login: Callable[[nats_auth.User], Awaitable[As]], nc: NATS
) -> None:
    a = await login("persistence")
    js = a.nc.jetstream()
    # What it needs: an ephemeral, ack-less reader per partition, and the leases.
    config = ConsumerConfig(
        filter_subject=subjects.stored_partition(0),
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.NONE,
        inactive_threshold=5.0,
        mem_storage=True,
        num_replicas=1,
    )
    sub = await js.pull_subscribe(subjects.stored_partition(0), stream=JOBS, config=config)
    with contextlib.suppress(TimeoutError):
        await sub.fetch(1, timeout=0.5)
    assert (await sub.consumer_info()).config.filter_subject == subjects.stored_partition(0)
    await sub.unsubscribe()
    leases = await js.key_value(subjects.LEASES_BUCKET)
    key = subjects.member_lease("nats-users-test", uuid.uuid4().hex)
    await leases.put(key, b"alive")
    await leases.delete(key)
    watcher = await leases.watch(subjects.member_lease("nats-users-test", "*"))
    await watcher.stop()  # type: ignore[no-untyped-call]
    await reaches_jobs(a, job_event_subject("failed"))
    a.assert_clean()
    # Not: a durable consumer (pulled, or re-created with another filter), other events.
    durable = subjects.UPLOAD_CONSUMER
    await a.refused_publish(f"{API}.CONSUMER.MSG.NEXT.{JOBS}.{durable}")
    create = f"{API}.CONSUMER.CREATE.{JOBS}.{durable}.{subjects.stored_partition(0)}"
    body = {"stream_name": JOBS, "config": {"name": durable, "ack_policy": "explicit"}}
    await a.refused_publish(create, json.dumps(body).encode())
    await durable_untouched(nc)
    await a.refused_publish(job_event_subject("processed"))
    await a.refused_publish(job_event_subject("uploaded"))
    await a.refused_publish(subjects.notify_job(uuid.uuid4(), "processed"))
    await a.refused_publish(f"{subjects.KV_PREFIX}.{subjects.UPLOADS_BUCKET}.x")


async def test_notification_actor(login: Callable[[nats_auth.User], Awaitable[As]]) -> None:
    a = await login("notification")
    listener = await login("subscriber")
    js = a.nc.jetstream()
    sub = await js.pull_subscribe_bind(durable=subjects.NOTIFICATION_CONSUMER, stream=JOBS)
    assert (await sub.consumer_info()).name == subjects.NOTIFICATION_CONSUMER
    # Its relay reaches a subscriber.
    job_id = uuid.uuid4()
    # Twice a relay published once never reached a callback subscription within 30 s
    # (cause not found; both runs warned that a subscription's task was destroyed while
    # pending): read with next_msg, and publish again until one arrives.
    relay = await listener.nc.subscribe(subjects.notify_job_all(job_id))
    await listener.nc.flush()
    # The owner's feed too (a refusal would be reported before the relay below arrives).
    await a.nc.publish(subjects.notify_owner(f"owner-{job_id}"), b"{}")

    async def relayed() -> Msg | None:
        # Core NATS delivers at most once: publish again until one arrives.
        await a.nc.publish(subjects.notify_job(job_id, "processed"), b"{}")
        await a.nc.flush()
        with contextlib.suppress(nats.errors.TimeoutError):
            return await relay.next_msg(timeout=0.5)
        return None

    msg = await wait_for_value(relayed, within=30, what="the relayed event")
    assert msg.subject == subjects.notify_job(job_id, "processed")
    a.assert_clean()
    # Not: any job event, any other consumer.
    for event_type in ("uploaded", "verified", "processed", "failed"):
        await a.refused_publish(job_event_subject(event_type))
    await a.refused_publish(f"{API}.CONSUMER.MSG.NEXT.{JOBS}.{subjects.UPLOAD_CONSUMER}")
    await a.refused_publish(f"{API}.STREAM.MSG.GET.{JOBS}")


async def test_webhooks_actor(
    login: Callable[[nats_auth.User], Awaitable[As]], nc: NATS, owner: str
) -> None:
    a = await login("webhooks")
    js = a.nc.jetstream()
    sub = await js.pull_subscribe_bind(durable=subjects.WEBHOOKS_CONSUMER, stream=JOBS)
    assert (await sub.consumer_info()).name == subjects.WEBHOOKS_CONSUMER
    # It reads the owners' webhooks (written here as the gateway would)...
    written = OwnerWebhooks(owner=owner)
    admin_kv = await nc.jetstream().key_value(subjects.WEBHOOKS_BUCKET)
    await admin_kv.put(subjects.owner_key(owner), msgspec.json.encode(written))
    kv = await js.key_value(subjects.WEBHOOKS_BUCKET)
    entry = await kv.get(subjects.owner_key(owner))
    assert msgspec.json.decode(entry.value or b"", type=OwnerWebhooks) == written
    a.assert_clean()
    # ...but never changes them, publishes an event or takes another's messages.
    await a.refused_publish(f"{subjects.KV_PREFIX}.{subjects.WEBHOOKS_BUCKET}.x")
    for event_type in ("uploaded", "processed", "failed"):
        await a.refused_publish(job_event_subject(event_type))
    await a.refused_publish(subjects.notify_owner(owner))
    await a.refused_publish(f"{API}.CONSUMER.MSG.NEXT.{JOBS}.{subjects.NOTIFICATION_CONSUMER}")
    await a.refused_publish(f"{API}.STREAM.MSG.GET.KV_{subjects.UPLOADS_BUCKET}")


async def test_subscriber_reads_and_nothing_else(
    login: Callable[[nats_auth.User], Awaitable[As]],
    api: Api,
    nc: NATS,
) -> None:
    ticket, _ = await api.submit(b"a,b\n1,2\n")
    job_id = ticket["job_id"]
    await api.wait_terminal(job_id)
    a = await login("subscriber")
    js = a.nc.jetstream()
    # What it may: stream info, messages by subject or by sequence.
    assert (await js.stream_info(JOBS)).state.messages >= 1
    first = await js.get_last_msg(JOBS, subjects.stored_job_event(job_id, "uploaded"))
    assert first.data
    assert first.seq is not None
    after = await js.get_msg(
        JOBS, seq=first.seq + 1, subject=subjects.stored_job_events(job_id), next=True
    )
    assert subjects.event_type_of(after.subject or "") == "verifying"
    a.assert_clean()
    # No consumer: its deliver subject could point at `dlq.>` or the relay, and the
    # server would publish there (nats-io/nats-server#8274).
    await a.refused_publish(
        f"{API}.CONSUMER.CREATE.{JOBS}.mine.{subjects.stored_job_events(job_id)}"
    )
    # Never: an event, a relay, an ack, a delete, a purge, another's bucket.
    await a.refused_publish(subjects.job_event(job_id, "processed"))
    await a.refused_publish(subjects.job_event(job_id, "uploaded"))
    await a.refused_publish(subjects.notify_job(job_id, "processed"))
    await a.refused_publish(subjects.dead_letter("upload", job_id))
    await a.refused_publish(f"{subjects.JS_ACK}.{JOBS}.{subjects.NOTIFICATION_CONSUMER}.1.1.1.1.0")
    await a.refused_publish(f"{API}.STREAM.MSG.GET.KV_{subjects.UPLOADS_BUCKET}")
    await a.refused_publish(f"{API}.DIRECT.GET.KV_{subjects.UPLOADS_BUCKET}.x")
    await a.refused_publish(f"{subjects.KV_PREFIX}.{subjects.UPLOADS_BUCKET}.x")
    await a.refused_subscribe(f"{subjects.KV_PREFIX}.{subjects.UPLOADS_BUCKET}.>")
    await a.refused_publish(f"{API}.CONSUMER.MSG.NEXT.{JOBS}.{subjects.NOTIFICATION_CONSUMER}")
    # Creating a consumer named like a durable one would rewrite that durable.
    durable = subjects.UPLOAD_CONSUMER
    create = f"{API}.CONSUMER.CREATE.{JOBS}.{durable}.{subjects.stored_job_events(job_id)}"
    await a.refused_publish(create)
    await a.refused_publish(f"{API}.CONSUMER.CREATE.{JOBS}.{durable}")
    await durable_untouched(nc)


async def test_ops_administers(login: Callable[[nats_auth.User], Awaitable[As]]) -> None:
    a = await login("ops")
    js = a.nc.jetstream()
    info = await js.add_consumer(
        JOBS,
        ConsumerConfig(
            filter_subject=subjects.stored_partition(0),
            ack_policy=AckPolicy.NONE,
            inactive_threshold=5.0,
            mem_storage=True,
        ),
    )
    assert await js.delete_consumer(JOBS, info.name or "")
    assert (await js.stream_info(subjects.DEAD_LETTER_STREAM)).config.name == (
        subjects.DEAD_LETTER_STREAM
    )
    a.assert_clean()
    # Even ops only reads its own replies, and publishes no relay.
    await a.refused_subscribe(f"{subjects.inbox_prefix('subscriber')}.>")
    await a.refused_publish(subjects.notify_job(uuid.uuid4(), "processed"))
