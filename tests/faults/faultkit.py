"""The fault suite's kit: a fresh cluster of separate Conveyor processes on its own
embedded servers for each test, load through the HTTP API, and reconciliation.

`tests/conftest.py` loads this module as a plugin, so its fixtures reach the
fault tests; each fault test starts from clean servers and leaves nothing behind.

Unlike the session's single `conveyor run`, every component here is its own
process (two of upload, processing and persistence), so a test can kill -9 one,
stop nats-server or Postgres, and watch the rest carry on. Load goes through the
real HTTP API; reconciliation reads Postgres, the streams and the HTTP answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from conftest import UNLIMITED, connect_as, settings_env
from nats.js.errors import KeyNotFoundError

from actors.leases import member_id
from gateway.auth import issue_token
from ops.connections import postgres_pool
from ops.processes import provision
from ops.secrets import with_dev_secrets
from ops.stack import EmbeddedStack, die_with_parent, free_port
from schemas import subjects
from schemas.api import ENDED_STATUSES
from schemas.settings import Settings
from tests.waits import eventually

PROCESSES = {
    "gateway": ["gateway", "--no-provision"],
    "upload-1": ["actor", "upload", "--no-provision"],
    "upload-2": ["actor", "upload", "--no-provision"],
    "processing-1": ["actor", "processing", "--no-provision"],
    "processing-2": ["actor", "processing", "--no-provision"],
    "persistence-1": ["actor", "persistence", "--no-provision"],
    "persistence-2": ["actor", "persistence", "--no-provision"],
    "notification": ["actor", "notification", "--no-provision"],
    # Started only by the tests that want them.
    "persistence-3": ["actor", "persistence", "--no-provision"],
    "persistence-4": ["actor", "persistence", "--no-provision"],
}
DEFAULT = [name for name in PROCESSES if name not in ("persistence-3", "persistence-4")]


@dataclass
class Cluster:
    stack: EmbeddedStack
    settings: Settings
    url: str
    logs: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str) -> None:
        with (self.logs / f"{name}.log").open("ab") as out:
            self.procs[name] = subprocess.Popen(
                [sys.executable, "-m", "ops", *PROCESSES[name]],
                env=settings_env(self.settings),
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent,
            )

    def signal(self, name: str, sig: int, *, wait: float = 30.0) -> int:
        proc = self.procs[name]
        proc.send_signal(sig)
        return proc.wait(timeout=wait)

    def alive(self, name: str) -> bool:
        return self.procs[name].poll() is None

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def wait_ready(c: Cluster, timeout: float = 60.0) -> None:
    async with httpx.AsyncClient(base_url=c.url, timeout=2) as client:

        async def ready() -> bool:
            # A process that died will not come up: fail now, with its log's end.
            dead = [n for n, p in c.procs.items() if p.poll() is not None]
            assert not dead, {n: c.log(n)[-2000:] for n in dead}
            with contextlib.suppress(httpx.TransportError):
                return (await client.get("/ready")).status_code == 200
            return False

        await eventually(ready, within=timeout, what="fault cluster ready")


async def partitions_of(c: Cluster) -> dict[str, set[int]]:
    """Which process (by name) holds which persistence partitions now."""
    pids = {member_id(p.pid): name for name, p in c.procs.items()}
    nc = await connect_as(c.settings, "ops")
    try:
        kv = await nc.jetstream().key_value(subjects.LEASES_BUCKET)
        held: dict[str, set[int]] = {}
        for partition in range(c.settings.partitions):
            with contextlib.suppress(KeyNotFoundError):
                entry = await kv.get(subjects.partition_lease(subjects.PERSISTENCE, partition))
                owner = pids.get((entry.value or b"").decode(), "?")
                held.setdefault(owner, set()).add(partition)
        return held
    finally:
        await nc.close()


async def jobs_applied(pool: asyncpg.Pool[Any], at_least: int) -> bool:
    return bool(await pool.fetchval("SELECT count(*) FROM job_events") >= at_least)


@dataclass
class Load:
    """Jobs driven through the HTTP API: which were accepted (2xx), which refused."""

    owner: str
    accepted: dict[str, int] = field(default_factory=dict)  # job_id -> seq
    refused: dict[int, int] = field(default_factory=dict)  # status -> count
    errors: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)
    sent: int = 0  # HTTP requests to the gateway
    ok: int = 0  # of which answered 2xx
    name: str = ""


async def drive(
    c: Cluster,
    jobs: int,
    *,
    concurrency: int = 16,
    owner: str | None = None,
    stop: asyncio.Event | None = None,
    name: str = "",
) -> Load:
    """Create, upload and complete `jobs` small files; tolerate refusals and resets."""
    load = Load(owner=owner or f"fault-{uuid.uuid4().hex[:10]}", name=name)
    headers = {"Authorization": f"Bearer {issue_token(c.settings, load.owner)}"}
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(jobs):
        queue.put_nowait(i)
    limits = httpx.Limits(max_connections=concurrency * 2)
    async with httpx.AsyncClient(base_url=c.url, timeout=10, limits=limits) as api:

        async def call(method: str, url: str, **kw: Any) -> httpx.Response | None:
            """As a careful client does: a lost answer is asked again (same
            Idempotency-Key, so never a second upload or job); None if it stays lost."""
            for _ in range(3):
                try:
                    return await api.request(method, url, **kw)
                except httpx.TransportError as exc:
                    load.errors += 1
                    load.error_kinds[type(exc).__name__] = (
                        load.error_kinds.get(type(exc).__name__, 0) + 1
                    )
            return None

        async def one(i: int) -> None:
            content = f"fault file {i} {uuid.uuid4()}\n".encode() * 4
            body = {"filename": f"f{i}.txt", "content_type": "text/plain", "size": len(content)}
            key = uuid.uuid4().hex
            load.sent += 1
            r = await call(
                "POST", "/v1/uploads", json=body, headers={**headers, "Idempotency-Key": key}
            )
            if r is None:
                return
            if r.status_code == 201:
                load.ok += 1
            else:
                assert r.status_code == 503, r.text  # never 500
                load.refused[r.status_code] = load.refused.get(r.status_code, 0) + 1
                return
            ticket = r.json()
            put = await call("PUT", ticket["url"], content=content, headers=ticket["headers"])
            assert put is not None
            assert put.status_code == 200, put.text
            load.sent += 1
            r = await call(
                "POST",
                f"/v1/uploads/{ticket['upload_id']}/complete",
                headers={**headers, "Idempotency-Key": key},
            )
            if r is None:
                return
            if r.status_code == 202:
                load.ok += 1
                load.accepted[r.json()["job_id"]] = r.json()["seq"]
            else:
                assert r.status_code == 503, r.text  # never 500, never a 2xx unstored
                load.refused[r.status_code] = load.refused.get(r.status_code, 0) + 1

        async def worker() -> None:
            while not queue.empty() and not (stop and stop.is_set()):
                await one(queue.get_nowait())

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return load


async def reconcile(
    pool: asyncpg.Pool[Any], load: Load, *, timeout: float = 180.0
) -> dict[str, str]:
    """Wait until every accepted job is terminal; check none is missing or doubled."""
    assert load.accepted, "the load was refused entirely"
    wanted = [uuid.UUID(j) for j in load.accepted]
    done = None  # unknown until Postgres first answers

    async def all_done() -> bool:
        nonlocal done
        # Postgres may be down (an outage test): not yet, rather than a failure.
        with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            done = await pool.fetchval(
                "SELECT count(*) FROM jobs WHERE job_id = ANY($1) AND status = ANY($2)",
                wanted,
                list(ENDED_STATUSES),
            )
        return done == len(wanted)

    try:
        await eventually(all_done, within=timeout, what="every accepted job terminal")
    except AssertionError:
        # How far it got, which the deadline's own message can not know.
        raise AssertionError(f"{done}/{len(wanted)} jobs terminal after {timeout}s") from None
    rows = await pool.fetch("SELECT job_id, status FROM jobs WHERE owner = $1", load.owner)
    statuses = {str(r["job_id"]): r["status"] for r in rows}
    lost = set(load.accepted) - set(statuses)
    doubled = await pool.fetch(
        "SELECT e.job_id, e.type, count(*) FROM job_events e JOIN jobs j USING (job_id)"
        " WHERE j.owner = $1 GROUP BY e.job_id, e.type HAVING count(*) > 1",
        load.owner,
    )
    # The figures first, so a failing run still shows them.
    print(
        f"\n[{load.name or load.owner}] requests sent {load.sent}, 2xx {load.ok},"
        f" jobs accepted {len(load.accepted)},"
        f" refused {load.refused or 0}, transport errors {load.errors} {load.error_kinds or ''},"
        f" jobs completed {sum(1 for j in load.accepted if statuses.get(j) in ENDED_STATUSES)},"
        f" duplicates {len(doubled)}, lost {len(lost)}"
    )
    # None missing; a job may exist that the client never heard about (an answer lost
    # after the event was stored), but no accepted one may be absent.
    assert lost == set()
    assert doubled == [], doubled
    uploaded = await pool.fetchval(
        "SELECT count(*) FROM job_events e JOIN jobs j USING (job_id)"
        " WHERE j.owner = $1 AND e.type = 'uploaded'",
        load.owner,
    )
    assert uploaded == len(statuses)
    # Nothing half-applied: each job row reflects the newest of its logged events.
    torn = await pool.fetchval(
        "SELECT count(*) FROM jobs j WHERE j.owner = $1 AND j.last_seq <>"
        " (SELECT max(seq) FROM job_events e WHERE e.job_id = j.job_id)",
        load.owner,
    )
    assert torn == 0
    return statuses


# -- fixtures ---------------------------------------------------------------


@pytest.fixture
def fault_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStack]:
    data_dir = tmp_path_factory.mktemp("faults")
    settings = with_dev_secrets(
        Settings(
            data_dir=str(data_dir),
            log_format="json",
            # Short enough that give-ups and take-overs happen within a test.
            max_deliver=3,
            ack_wait_seconds=5.0,
            shutdown_grace_seconds=10.0,
        )
    )
    with EmbeddedStack(settings) as stack:
        yield stack


@pytest.fixture
async def cluster(fault_stack: EmbeddedStack) -> AsyncIterator[Cluster]:
    settings = fault_stack.settings_out.replace(http_port=free_port(), **UNLIMITED)
    await provision(settings)
    logs = Path(settings.data_dir) / "logs"
    c = Cluster(
        stack=fault_stack,
        settings=settings,
        url=f"http://127.0.0.1:{settings.http_port}",
        logs=logs,
    )
    for name in DEFAULT:
        c.start(name)
    try:
        await wait_ready(c)
        yield c
    finally:
        c.stop_all()


@pytest.fixture
async def pool(cluster: Cluster) -> AsyncIterator[asyncpg.Pool[Any]]:
    async with postgres_pool(cluster.settings, size=2) as p:
        yield p
