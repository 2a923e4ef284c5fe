"""The Celery baseline of `conveyor bench pipeline`: the same steps as Conveyor's actors,
as a chain of three Celery tasks on Redis (the embedded Valkey), run by
`celery -A ops.bench.celery_chain worker`.

1. `verify`: one S3 GET, its length checked from the headers before the body is
   streamed through sha256 (1 MiB reads), and its type detected from the first bytes,
   as the upload actor does (the issue's "S3 HEAD" step, folded into the GET on both
   sides: equal work, one request each).
2. `profile`: the object downloaded to a temporary folder and profiled by Conveyor's
   own processor for its type (the tabular processor for a CSV: the very same polars
   code, exports and charts included); every artifact and the result JSON stored in S3,
   as the processing actor does.
3. `store`: one INSERT into a Postgres table (asyncpg, one connection per worker
   process, kept), then a Redis PUBLISH of the job id so the load generator learns it
   is done (the counterpart of Conveyor's notification relay).

Clients (boto3, asyncpg, redis) are made once per worker process and reused. Tasks
are acked late (after their effect, as Conveyor's actors ack), results are not stored.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import tempfile
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from actors.processing import CONTENT_TYPES, as_result
from actors.processors.base import FileInfo, Processor
from actors.processors.detect import detect_mime
from actors.processors.registry import load_processors, pick
from actors.upload import CHUNK, Digest

if TYPE_CHECKING:
    import asyncpg
    import redis

DONE_CHANNEL = "bench-pipeline-celery-done"
TABLE = "bench_celery_jobs"
CREATE_TABLE = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    job_id uuid PRIMARY KEY,
    key text NOT NULL,
    size bigint NOT NULL,
    sha256 text NOT NULL,
    mime text NOT NULL,
    processor text NOT NULL,
    result_key text NOT NULL,
    result json NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
)
"""
INSERT = f"""
INSERT INTO {TABLE} (job_id, key, size, sha256, mime, processor, result_key, result)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8::json) ON CONFLICT (job_id) DO NOTHING
"""

# Imported by name: Celery and boto3 ship no type information (mypy sees them as Any).
Celery = importlib.import_module("celery").Celery
app: Any = Celery("conveyor-bench-pipeline", broker=os.environ.get("CONVEYOR_REDIS_URL") or None)
app.conf.update(
    task_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    task_acks_late=True,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)


def _env(name: str) -> str:
    return os.environ[f"CONVEYOR_{name.upper()}"]


@cache
def _s3() -> Any:
    from botocore.config import Config

    boto3: Any = importlib.import_module("boto3")
    return boto3.client(
        "s3",
        endpoint_url=_env("s3_endpoint"),
        aws_access_key_id=_env("s3_access_key"),
        aws_secret_access_key=_env("s3_secret_key"),
        region_name=_env("s3_region"),
        config=Config(retries={"max_attempts": 3, "mode": "standard"}),
    )


@cache
def _loop() -> asyncio.AbstractEventLoop:
    return asyncio.new_event_loop()


@cache
def _postgres() -> asyncpg.Connection[Any]:
    import asyncpg

    return _loop().run_until_complete(asyncpg.connect(_env("database_url")))


@cache
def _redis() -> redis.Redis:
    import redis

    return redis.Redis.from_url(_env("redis_url"))


@cache
def _processors() -> list[Processor]:
    return load_processors()


def _bucket() -> str:
    return _env("s3_bucket")


def _verify(job: dict[str, Any]) -> dict[str, Any]:
    s3, bucket = _s3(), _bucket()
    obj = s3.get_object(Bucket=bucket, Key=job["key"])
    body = obj["Body"]
    digest = Digest()  # the upload actor's, fed by a blocking read
    try:
        if int(obj["ContentLength"]) != job["size"]:
            raise ValueError("size mismatch")
        while chunk := body.read(CHUNK):
            digest.update(chunk)
    finally:
        body.close()
    etag = str(obj.get("ETag", ""))
    if digest.size != job["size"]:
        raise ValueError("size mismatch")
    return {**job, "sha256": digest.sha256, "etag": etag, "mime": detect_mime(digest.first)}


def _profile(job: dict[str, Any]) -> dict[str, Any]:
    s3, bucket = _s3(), _bucket()
    processor = pick(_processors(), job["mime"])
    info = FileInfo(
        filename=job["filename"], size=job["size"], sha256=job["sha256"], mime=job["mime"]
    )
    prefix = f"bench-celery/{job['job_id']}"
    with tempfile.TemporaryDirectory(prefix="bench-celery-") as tmp:
        source, out = Path(tmp) / "source", Path(tmp) / "artifacts"
        out.mkdir()
        body = s3.get_object(Bucket=bucket, Key=job["key"], IfMatch=job["etag"])["Body"]
        try:
            with source.open("wb") as target:
                while chunk := body.read(CHUNK):
                    target.write(chunk)
        finally:
            body.close()
        result = as_result(processor.run(source, info, out))
        for path in sorted(out.iterdir()):
            content_type = CONTENT_TYPES.get(path.suffix, "application/octet-stream")
            s3.upload_file(
                str(path),
                bucket,
                f"{prefix}/artifacts/{path.name}",
                ExtraArgs={"ContentType": content_type},
            )
    encoded = msgspec.json.encode(result)
    result_key = f"{prefix}/result.json"
    s3.put_object(Bucket=bucket, Key=result_key, Body=encoded, ContentType="application/json")
    return {
        **job,
        "processor": processor.name,
        "result_key": result_key,
        "result": encoded.decode(),
    }


def _store(job: dict[str, Any]) -> None:
    import uuid

    conn = _postgres()
    _loop().run_until_complete(
        conn.execute(
            INSERT,
            uuid.UUID(job["job_id"]),
            job["key"],
            job["size"],
            job["sha256"],
            job["mime"],
            job["processor"],
            job["result_key"],
            job["result"],
        )
    )
    _redis().publish(DONE_CHANNEL, job["job_id"])


# Registered without decorators (an untyped decorator would hide the signatures).
verify = app.task(name="bench.verify")(_verify)
profile = app.task(name="bench.profile")(_profile)
store = app.task(name="bench.store")(_store)
