"""Views of ended jobs in Redis: written on the first read, keyed by owner, and never
in the way when Redis is not there."""

from __future__ import annotations

import uuid

import asyncpg
import msgspec
from conftest import Api, Service
from redis.asyncio import Redis

from gateway.cache import JobCache
from gateway.pause import Pause
from ops.stack import free_port
from schemas.api import JobView
from schemas.keys import job_cache_key


async def test_an_ended_job_is_cached_for_its_owner_only(
    api: Api, other_api: Api, owner: str, service: Service
) -> None:
    ticket, _ = await api.submit(b"a,b\n1,2\n")
    job = await api.wait_terminal(ticket["job_id"])
    redis = Redis.from_url(service.settings.redis_url)
    try:
        key = job_cache_key(owner, uuid.UUID(ticket["job_id"]))
        # wait_terminal's last read found it ended and kept it.
        cached = msgspec.json.decode(await redis.get(key) or b"null", type=JobView | None)
        assert cached is not None
        assert msgspec.to_builtins(cached) == job
        assert 0 < await redis.ttl(key) <= service.settings.job_cache_seconds
        # Served again from the cache: a change behind its back in Postgres (which the
        # list reads) does not show in the job's own view.
        conn = await asyncpg.connect(service.settings.database_url)
        try:
            await conn.execute(
                "UPDATE jobs SET filename = 'changed.csv' WHERE job_id = $1",
                uuid.UUID(ticket["job_id"]),
            )
        finally:
            await conn.close()
        listed = (await api.get("/v1/jobs")).json()["items"]
        assert [j["filename"] for j in listed] == ["changed.csv"]
        assert (await api.get(f"/v1/jobs/{ticket['job_id']}")).json() == job
        # And still not to anybody else.
        assert (await other_api.get(f"/v1/jobs/{ticket['job_id']}")).status_code == 404
    finally:
        await redis.aclose()


def _view(status: str) -> JobView:
    return msgspec.convert(
        {
            "job_id": str(uuid.uuid4()),
            "upload_id": str(uuid.uuid4()),
            "filename": "f.csv",
            "content_type": "text/csv",
            "size": 1,
            "sha256": None,
            "status": status,
            "result": None,
            "error": None,
            "created_at": "2026-11-21T00:00:00Z",
            "updated_at": "2026-11-21T00:00:00Z",
        },
        JobView,
    )


async def test_open_jobs_are_not_cached(service: Service) -> None:
    redis = Redis.from_url(service.settings.redis_url)
    cache = JobCache(redis, ttl_seconds=60)
    owner = f"cache-{uuid.uuid4().hex[:8]}"
    try:
        for status in ("queued", "verifying", "processing"):
            view = _view(status)
            await cache.put(owner, view)
            assert await redis.exists(job_cache_key(owner, view.job_id)) == 0
        ended = _view("failed")
        await cache.put(owner, ended)
        # Written through to Redis: the `get` below is answered by the process itself.
        assert await redis.exists(job_cache_key(owner, ended.job_id)) == 1
        assert await cache.get(owner, ended.job_id) == ended
        assert await cache.get(f"{owner}-other", ended.job_id) is None
    finally:
        await redis.aclose()


async def test_without_redis_the_cache_steps_aside() -> None:
    redis = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=1)
    pause = Pause()
    cache = JobCache(redis, ttl_seconds=60, pause=pause)
    try:
        view = _view("succeeded")
        await cache.put("someone", view)  # no error
        # Bypassed for a while: no connection attempt per request.
        assert pause.active
        # What this process holds itself still serves; nothing else is found.
        assert await cache.get("someone", view.job_id) == view
        assert await JobCache(redis, ttl_seconds=60).get("someone", view.job_id) is None
    finally:
        await redis.aclose()
