"""Clients of the four servers, as async context managers built from `Settings`.

Created by entry points and test fixtures, then handed to actors and the gateway.
"""

from __future__ import annotations

import asyncio
import urllib.parse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import aioboto3
import aiohttp
import asyncpg
import httpx
import nats
import structlog
from botocore.config import Config
from nats.aio.client import Client as NATS
from redis.asyncio import Redis

from actors.destinations import PublicResolver
from gateway.auth import ASYMMETRIC, TokenVerifier
from gateway.jwks import KeySet
from ops.nats_auth import User, password_of
from ops.s3_endpoints import cache_endpoints
from schemas.errors import SettingsError
from schemas.settings import Settings
from schemas.subjects import inbox_prefix

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

log = structlog.get_logger("ops.connections")

# Of an HS256 secret: shorter ones can be found by trying.
MIN_SECRET_LENGTH = 32


def nats_credentials(settings: Settings, user: User) -> dict[str, Any]:
    """The `nats.connect` options that make a client NATS user `user` (see
    `ops.nats_auth`): without user and password when its password is empty."""
    password = password_of(settings, user)
    return {
        "user": user if password else None,
        "password": password or None,
        # Replies come to this user's own inboxes, the only ones it may subscribe to.
        "inbox_prefix": inbox_prefix(user),
    }


@asynccontextmanager
async def nats_connection(
    settings: Settings, *, name: str, user: User, closed: asyncio.Event | None = None
) -> AsyncIterator[NATS]:
    """Connects as NATS user `user` (see `ops.nats_auth`); without credentials when
    its password is empty. Reconnects forever; `closed` is set if the connection is
    closed for good."""

    closing = False

    async def on_disconnect() -> None:
        if not closing:
            log.warning("nats disconnected", client=name)

    async def on_reconnect() -> None:
        log.info("nats reconnected", client=name)

    async def on_closed() -> None:
        if closed is not None:
            closed.set()

    async def on_error(exc: Exception) -> None:
        log.warning("nats error", client=name, error=str(exc))

    nc = await nats.connect(
        # Several seed servers may be given, comma-separated (a cluster).
        [url.strip() for url in settings.nats_url.split(",") if url.strip()],
        name=name,
        **nats_credentials(settings, user),
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,
        connect_timeout=5,
        disconnected_cb=on_disconnect,
        reconnected_cb=on_reconnect,
        closed_cb=on_closed,
        error_cb=on_error,
    )
    try:
        yield nc
    finally:
        closing = True
        if not nc.is_closed:
            try:
                await asyncio.wait_for(nc.drain(), timeout=10)
            except Exception:
                await nc.close()


async def _keep_session(conn: asyncpg.Connection[Any]) -> None:
    """A connection back in the pool needs no reset query (asyncpg's default, a round
    trip on every release): Conveyor leaves no session state behind. Its settings and
    locks are transaction-local (`set_config(..., true)`, `pg_advisory_xact_lock`), and
    it neither LISTENs nor keeps cursors. asyncpg still rolls back an open transaction."""


@asynccontextmanager
async def postgres_pool(
    settings: Settings, *, size: int | None = None
) -> AsyncIterator[asyncpg.Pool[Any]]:
    pool = await asyncpg.create_pool(
        settings.database_url,
        min_size=1,
        max_size=size or settings.db_pool_size,
        command_timeout=30,
        reset=_keep_session,
    )
    try:
        yield pool
    finally:
        await asyncio.wait_for(pool.close(), timeout=10)


@asynccontextmanager
async def token_verifier(settings: Settings) -> AsyncIterator[TokenVerifier]:
    """HS256 with the shared secret, or the issuer's JWKS (fetched over HTTP) when set."""
    if not settings.jwt_jwks_url:
        if len(settings.jwt_secret) < MIN_SECRET_LENGTH:
            raise SettingsError(f"CONVEYOR_JWT_SECRET: at least {MIN_SECRET_LENGTH} characters")
        yield TokenVerifier(settings)
        return
    url = urllib.parse.urlsplit(settings.jwt_jwks_url)
    if url.scheme != "https" and url.hostname not in ("127.0.0.1", "::1", "localhost"):
        # Whoever can change the keys in transit can sign any token.
        raise SettingsError("CONVEYOR_JWT_JWKS_URL: https, unless on this host")
    async with httpx.AsyncClient(timeout=5, follow_redirects=False) as http:
        keys = KeySet(
            settings.jwt_jwks_url,
            http,
            algorithms=ASYMMETRIC,
            ttl=settings.jwt_jwks_cache_seconds,
            min_refresh=settings.jwt_jwks_min_refresh_seconds,
        )
        yield TokenVerifier(settings, keys)


@asynccontextmanager
async def redis_client(settings: Settings) -> AsyncIterator[Redis]:
    client = Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=5)
    try:
        yield client
    finally:
        await client.aclose()


def _s3_config() -> Config:
    return Config(
        signature_version="s3v4",
        s3={"addressing_style": "path"},
        retries={"max_attempts": 3, "mode": "standard"},
        connect_timeout=5,
        read_timeout=60,
    )


@asynccontextmanager
async def s3_client(settings: Settings) -> AsyncIterator[S3Client]:
    # Presigned URLs, which name the address clients use, come from gateway.presign.
    session = aioboto3.Session()
    async with session.client(
        "s3",
        endpoint_url=settings.s3_endpoint,
        aws_access_key_id=settings.s3_access_key,
        aws_secret_access_key=settings.s3_secret_key,
        region_name=settings.s3_region,
        config=_s3_config(),
    ) as client:
        cache_endpoints(client)
        yield client


@asynccontextmanager
async def webhook_session(settings: Settings) -> AsyncIterator[aiohttp.ClientSession]:
    """The HTTP client of the webhooks actor: public addresses only (unless allowed
    otherwise), no cookies kept between receivers, the per-delivery time limit."""
    connector = aiohttp.TCPConnector(
        resolver=None if settings.webhook_allow_private else PublicResolver(),
        limit=100,
        limit_per_host=8,
    )
    async with aiohttp.ClientSession(
        connector=connector,
        cookie_jar=aiohttp.DummyCookieJar(),
        timeout=aiohttp.ClientTimeout(
            total=settings.webhook_timeout_seconds,
            connect=min(5.0, settings.webhook_timeout_seconds),
        ),
        trust_env=False,
    ) as session:
        yield session
