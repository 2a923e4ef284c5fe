"""Views of ended jobs, kept in Redis for every gateway process, and the most recent
ones in the process itself.

Only jobs that have ended are kept: nothing changes them any more (a late failure
never overturns an ended job, and a replay rebuilds the same rows), so a cached view
is never stale and needs no invalidation. Redis is a cache here: when it is away,
reads go to Postgres, and it is asked again after a pause.
"""

from __future__ import annotations

import uuid

import msgspec
import structlog
from cachetools import TTLCache
from redis.asyncio import Redis
from redis.exceptions import RedisError

from gateway.pause import Pause
from schemas.api import ENDED_STATUSES, JobView
from schemas.keys import job_cache_key

log = structlog.get_logger("gateway.cache")

# Views held in the process (a few KB each), in front of Redis: a hit costs no round trip.
LOCAL_ENTRIES = 10_000


class JobCache:
    def __init__(self, redis: Redis, *, ttl_seconds: int, pause: Pause | None = None) -> None:
        self._redis = redis
        self._ttl = ttl_seconds
        self._encoder = msgspec.json.Encoder()
        self._decoder = msgspec.json.Decoder(JobView)
        # Redis is bypassed while it is active: started by each failure.
        self._pause = Pause() if pause is None else pause
        self._local: TTLCache[str, JobView] = TTLCache(
            maxsize=LOCAL_ENTRIES, ttl=max(1, ttl_seconds)
        )

    def _failed(self, exc: Exception) -> None:
        self._pause.start()
        log.warning("job cache bypassed", error=f"{type(exc).__name__}: {exc}")

    async def get(self, owner: str, job_id: uuid.UUID) -> JobView | None:
        if self._ttl <= 0:
            return None
        key = job_cache_key(owner, job_id)
        held = self._local.get(key)
        if held is not None:
            return held
        if self._pause.active:
            return None
        try:
            raw = await self._redis.get(key)
        except (RedisError, OSError) as exc:
            self._failed(exc)
            return None
        if raw is None:
            return None
        try:
            view = self._decoder.decode(raw)
        except msgspec.DecodeError:
            return None  # written by another version: read Postgres, then overwrite
        self._local[key] = view
        return view

    async def put(self, owner: str, view: JobView) -> None:
        if view.status not in ENDED_STATUSES or self._ttl <= 0:
            return
        key = job_cache_key(owner, view.job_id)
        self._local[key] = view
        if self._pause.active:
            return
        try:
            await self._redis.set(key, self._encoder.encode(view), ex=self._ttl)
        except (RedisError, OSError) as exc:
            self._failed(exc)
