"""What the gateway's handlers use, built by the entry point and handed in."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import asyncpg
from cachetools import TTLCache
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.kv import KeyValue
from redis.asyncio import Redis

from actors.inbox import Inbox
from actors.publisher import Publisher
from gateway.auth import TokenVerifier
from gateway.cache import JobCache
from gateway.presign import Presigner
from gateway.ratelimit import RateLimits
from gateway.sockets import OpenSockets
from gateway.upload_policy import ContentTypes
from schemas.api import UploadRecord
from schemas.settings import Settings

if TYPE_CHECKING:
    from typing import TypeAlias

    from types_aiobotocore_s3 import S3Client

    PgPool: TypeAlias = asyncpg.Pool[asyncpg.Record]
else:
    # Litestar evaluates these hints at runtime, where asyncpg.Pool is not generic
    # and the S3 client type (stubs only) does not exist.
    PgPool = asyncpg.Pool
    S3Client = Any


@dataclass(frozen=True, slots=True)
class Services:
    settings: Settings
    nc: NATS
    js: JetStreamContext
    idempotency: KeyValue
    publisher: Publisher
    # JetStream requests on the hot write path (the uploads bucket, stream reads by
    # subject); the publisher's too.
    inbox: Inbox
    pool: PgPool
    redis: Redis
    s3: S3Client
    tokens: TokenVerifier
    rate_limits: RateLimits
    content_types: ContentTypes
    job_cache: JobCache
    presigner: Presigner
    # Uploads this process created in the last minute (see gateway.uploads).
    recent_uploads: TTLCache[str, UploadRecord]
    sockets: OpenSockets
    # Each owner's webhooks (actors.webhook_store).
    webhooks: KeyValue
