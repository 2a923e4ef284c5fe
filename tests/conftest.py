"""Session fixtures: the real servers, started once on free ports, and a real
`conveyor run` process (gateway + four actors) against them.

Tests stay apart by owner: each gets its own JWT subject, hence its own jobs,
S3 prefix and rows.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
from nats.aio.client import Client as NATS
from nats.js.errors import NotFoundError

from gateway.auth import issue_token
from ops.connections import nats_credentials
from ops.nats_auth import User
from ops.processes import provision
from ops.secrets import with_dev_secrets
from ops.stack import EmbeddedStack, die_with_parent, free_port
from schemas.api import ENDED_STATUSES
from schemas.settings import Settings, env_name
from tests.waits import eventually, wait_for_value

# The fault suite's fixtures (a fresh cluster per test): `tests/faults/faultkit.py`.
pytest_plugins = ["tests.faults.faultkit"]

# The NATS contract: other clients are written against these names.
ENVELOPE_FIELDS = frozenset(
    {
        "id",
        "type",
        "version",
        "occurred_at",
        "source",
        "job_id",
        "owner",
        "correlation_id",
        "causation_id",
        "data",
    }
)


# Every test talks from 127.0.0.1: the shared service must not throttle the suite.
# tests/gateway/test_limits.py starts gateways of its own with small budgets.
# The tests' webhook receivers listen on loopback, and retries come quickly.
WEBHOOKS_HERE = {
    "webhook_allow_private": True,
    "webhook_retry_seconds": 0.2,
    "webhook_max_tries": 3,
    "webhook_timeout_seconds": 5.0,
}
UNLIMITED = {
    f"rate_limit_{by}_{kind}": "1000000/minute"
    for by in ("owner", "address")
    for kind in ("reads", "writes")
}


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStack]:
    data_dir = tmp_path_factory.mktemp("conveyor")
    # Only what the tests set: never the developer's CONVEYOR_* servers.
    settings = with_dev_secrets(Settings(data_dir=str(data_dir), log_format="json"))
    with EmbeddedStack(settings) as started:
        yield started


@pytest.fixture(scope="session")
def settings(stack: EmbeddedStack) -> Settings:
    return stack.settings_out


@pytest.fixture(scope="session")
async def provisioned(settings: Settings) -> Settings:
    await provision(settings)
    return settings


async def connect_as(settings: Settings, user: User, **options: Any) -> NATS:
    """A NATS connection as `user` (see `ops.nats_auth`): its password, its inboxes."""
    return await nats.connect(settings.nats_url, **nats_credentials(settings, user), **options)


@pytest.fixture
async def nc(provisioned: Settings) -> AsyncIterator[NATS]:
    """A NATS connection of the test's own to the session's server, as the `ops` user."""
    client = await connect_as(provisioned, "ops")
    yield client
    await client.close()


@pytest.fixture
async def bucket(nc: NATS) -> AsyncIterator[str]:
    """A key-value bucket of the test's own: a stream the `ops` user may publish to,
    which no actor reads."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    await nc.jetstream().create_key_value(bucket=name, history=1)
    yield name
    # A test may have deleted it itself (to stand for NATS losing it).
    with contextlib.suppress(NotFoundError):
        await nc.jetstream().delete_key_value(name)


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment of a Conveyor process given exactly these settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    for name in settings.__struct_fields__:
        env[env_name(name)] = str(getattr(settings, name))
    env["CONVEYOR_LOG_FORMAT"] = "json"
    return env


@dataclass
class Service:
    """A running `conveyor run`: its URL, settings and log file."""

    url: str
    settings: Settings
    log: Path
    proc: subprocess.Popen[bytes]


@asynccontextmanager
async def conveyor_process(
    args: list[str],
    settings: Settings,
    name: str,
    *,
    stop_timeout: float = 20,
    probe: str = "/ready",
) -> AsyncIterator[Service]:
    """`conveyor ARGS` with exactly `settings`, until its gateway is ready; SIGTERM after."""
    log = Path(settings.data_dir) / "logs" / f"{name}.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ops", *args],
            env=settings_env(settings),
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,
        )
    url = f"http://{settings.http_host}:{settings.http_port}"
    try:
        await _await_ready(url, proc, log, probe)
        yield Service(url=url, settings=settings, log=log, proc=proc)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=stop_timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
async def service(provisioned: Settings) -> AsyncIterator[Service]:
    settings = provisioned.replace(
        http_port=free_port(), max_upload_bytes=10 * 1024 * 1024, shutdown_grace_seconds=5.0
    ).replace(**UNLIMITED, **WEBHOOKS_HERE)
    async with conveyor_process(["run"], settings, "conveyor-run") as running:
        yield running


async def _await_ready(
    url: str, proc: subprocess.Popen[bytes], log: Path, probe: str = "/ready"
) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=2) as client:

        async def ready() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"conveyor run exited {proc.returncode}:\n{log.read_text()[-4000:]}"
                )
            try:
                return (await client.get(probe)).status_code == 200
            except httpx.TransportError:
                return False

        try:
            await eventually(ready, within=60, what="gateway ready")
        except AssertionError as exc:
            # The process's own account of why is in its log.
            raise RuntimeError(f"{exc}:\n{log.read_text()[-4000:]}") from None


@pytest.fixture
def owner() -> str:
    return f"owner-{uuid.uuid4().hex[:12]}"


class Api:
    """The HTTP API as one owner sees it."""

    def __init__(self, client: httpx.AsyncClient, token: str) -> None:
        self.client = client
        self.token = token
        self.headers = {"Authorization": f"Bearer {token}"}

    async def post(self, path: str, **kw: Any) -> httpx.Response:
        kw["headers"] = {**self.headers, **kw.get("headers", {})}
        return await self.client.post(path, **kw)

    async def get(self, path: str, **kw: Any) -> httpx.Response:
        kw["headers"] = {**self.headers, **kw.get("headers", {})}
        return await self.client.get(path, **kw)

    async def create_upload(
        self,
        content: bytes,
        *,
        filename: str = "data.csv",
        content_type: str = "text/csv",
        size: int | None = None,
    ) -> dict[str, Any]:
        body = {
            "filename": filename,
            "content_type": content_type,
            "size": len(content) if size is None else size,
        }
        r = await self.post("/v1/uploads", json=body)
        assert r.status_code == 201, r.text
        ticket: dict[str, Any] = r.json()
        return ticket

    async def put(self, ticket: dict[str, Any], content: bytes) -> httpx.Response:
        # Straight to S3 with the presigned URL, as a browser would: no bearer token.
        async with httpx.AsyncClient(timeout=10) as s3:
            return await s3.put(ticket["url"], content=content, headers=ticket["headers"])

    async def submit(self, content: bytes, **kw: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        """Upload and complete: (ticket, 202 body)."""
        ticket = await self.create_upload(content, **kw)
        put = await self.put(ticket, content)
        assert put.status_code == 200, put.text
        r = await self.post(f"/v1/uploads/{ticket['upload_id']}/complete")
        assert r.status_code == 202, r.text
        return ticket, r.json()

    async def wait_terminal(self, job_id: str, timeout: float = 30.0) -> dict[str, Any]:
        """The job's view once it has ended."""
        last: dict[str, Any] = {}

        async def ended() -> dict[str, Any] | None:
            nonlocal last
            r = await self.get(f"/v1/jobs/{job_id}")
            if r.status_code != 200:
                return None
            last = r.json()
            return last if last["status"] in ENDED_STATUSES else None

        try:
            return await wait_for_value(ended, within=timeout, what=f"job {job_id} ended")
        except AssertionError as exc:
            # Where it stopped tells which actor did not do its part.
            raise AssertionError(f"{exc}; last seen: {last}") from None


@pytest.fixture
async def http(service: Service) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=service.url, timeout=10) as client:
        yield client


@pytest.fixture
def token_for(service: Service) -> Callable[[str], str]:
    return lambda subject: issue_token(service.settings, subject)


@pytest.fixture
def api(http: httpx.AsyncClient, token_for: Callable[[str], str], owner: str) -> Api:
    return Api(http, token_for(owner))


@pytest.fixture
def other_api(http: httpx.AsyncClient, token_for: Callable[[str], str]) -> Api:
    return Api(http, token_for(f"other-{uuid.uuid4().hex[:12]}"))
