"""Reads: one job, the caller's jobs, a job's result. Owner-scoped: another owner's
job answers 404, exactly like one that does not exist."""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

import asyncpg
import msgspec
from litestar import Request, get
from litestar.params import Parameter

from gateway.errors import NotFound, Unprocessable
from gateway.openapi import ProblemOperation, problems
from gateway.scopes import READ
from gateway.services import Services
from gateway.streams import StoredMessage, last_message
from schemas import subjects
from schemas.api import JobPage, JobStatus, JobView
from schemas.events import Envelope, Uploaded
from schemas.results import Result

_COLUMNS = (
    "job_id, upload_id, filename, content_type, size, sha256, status, result, error,"
    " created_at, updated_at"
)
_result_decoder = msgspec.json.Decoder(Result)
_envelope_decoder = msgspec.json.Decoder(Envelope)
_STATUSES = frozenset(JobStatus.__args__)  # type: ignore[attr-defined]


def parse_job_id(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise NotFound(f"no job {raw!r}") from None


def _view(row: asyncpg.Record) -> JobView:
    raw = row["result"]
    return JobView(
        job_id=row["job_id"],
        upload_id=row["upload_id"],
        filename=row["filename"],
        content_type=row["content_type"],
        size=row["size"],
        sha256=row["sha256"],
        status=row["status"],
        result=_result_decoder.decode(raw) if raw is not None else None,
        error=row["error"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


async def stored_uploaded(services: Services, job_id: uuid.UUID) -> StoredMessage | None:
    """The job's `uploaded` event as JOBS stores it, if it does."""
    subject = subjects.stored_job_event(job_id, "uploaded")
    return await last_message(services.inbox, subjects.JOBS_STREAM, subject)


async def _pending_view(services: Services, job_id: uuid.UUID, owner: str) -> JobView | None:
    """A job whose `uploaded` event is stored but not applied yet: read it from the stream."""
    stored = await stored_uploaded(services, job_id)
    if stored is None:
        return None
    event = _envelope_decoder.decode(stored.data)
    if event.owner != owner or not isinstance(event.data, Uploaded):
        return None
    d = event.data
    return JobView(
        job_id=event.job_id,
        upload_id=d.upload_id,
        filename=d.filename,
        content_type=d.content_type,
        size=d.size,
        sha256=None,
        status="queued",
        result=None,
        error=None,
        created_at=event.occurred_at,
        updated_at=event.occurred_at,
    )


async def _applied_view(services: Services, job_id: uuid.UUID, owner: str) -> JobView | None:
    """The job as persistence applied it (cached, else from Postgres), or None."""
    cached = await services.job_cache.get(owner, job_id)
    if cached is not None:
        return cached
    row = await services.pool.fetchrow(
        f"SELECT {_COLUMNS} FROM jobs WHERE job_id = $1 AND owner = $2", job_id, owner
    )
    if row is None:
        return None
    view = _view(row)
    await services.job_cache.put(owner, view)
    return view


async def find_job(services: Services, job_id: uuid.UUID, owner: str) -> JobView | None:
    return await _applied_view(services, job_id, owner) or await _pending_view(
        services, job_id, owner
    )


async def current_status(services: Services, job_id: uuid.UUID, owner: str) -> JobStatus:
    # A job not applied yet is "queued", all `_pending_view` could say: no stream read.
    job = await _applied_view(services, job_id, owner)
    return job.status if job is not None else "queued"


@get(
    "/v1/jobs/{job_id:str}",
    summary="One job: status, checksum, result or error",
    responses=problems(404, scope=READ),
    operation_class=ProblemOperation,
)
async def get_job(job_id: str, request: Request[str, Any, Any], services: Services) -> JobView:
    job = await find_job(services, parse_job_id(job_id), request.user)
    if job is None:
        raise NotFound(f"no job {job_id}")
    return job


def _encode_cursor(created_at: datetime, job_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(f"{created_at.isoformat()}|{job_id}".encode()).decode()


def _decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw, _, jid = base64.urlsafe_b64decode(cursor.encode()).decode().partition("|")
        at = datetime.fromisoformat(raw)
        # In UTC here, so a forged time Postgres could not represent fails now, not in the
        # query (this API's own cursors always carry their offset).
        at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
        return at, uuid.UUID(jid)
    except (ValueError, OverflowError, binascii.Error, UnicodeDecodeError):
        raise Unprocessable("cursor is not one this API returned") from None


@get(
    "/v1/jobs",
    summary="The caller's jobs, newest first",
    responses=problems(422, scope=READ),
    operation_class=ProblemOperation,
)
async def list_jobs(
    request: Request[str, Any, Any],
    services: Services,
    status: str | None = None,
    limit: Annotated[int, Parameter(ge=1, le=100)] = 20,
    cursor: str | None = None,
) -> JobPage:
    if status is not None and status not in _STATUSES:
        raise Unprocessable(f"status must be one of {', '.join(sorted(_STATUSES))}")
    args: list[Any] = [request.user]
    where = ["owner = $1"]
    if status is not None:
        args.append(status)
        where.append(f"status = ${len(args)}")
    if cursor is not None:
        at, jid = _decode_cursor(cursor)
        args += [at, jid]
        where.append(f"(created_at, job_id) < (${len(args) - 1}, ${len(args)})")
    args.append(limit + 1)
    rows = await services.pool.fetch(
        f"SELECT {_COLUMNS} FROM jobs WHERE {' AND '.join(where)}"
        f" ORDER BY created_at DESC, job_id DESC LIMIT ${len(args)}",
        *args,
    )
    items = [_view(r) for r in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        last = items[-1]
        next_cursor = _encode_cursor(last.created_at, last.job_id)
    return JobPage(items=items, next_cursor=next_cursor)


@get(
    "/v1/jobs/{job_id:str}/result",
    summary="The processor's output for a job",
    responses=problems(
        404, scope=READ, notes={404: "No such job for this owner, or no result yet."}
    ),
    operation_class=ProblemOperation,
)
async def get_result(job_id: str, request: Request[str, Any, Any], services: Services) -> Result:
    raw = await services.pool.fetchval(
        "SELECT result FROM jobs WHERE job_id = $1 AND owner = $2 AND result IS NOT NULL",
        parse_job_id(job_id),
        request.user,
    )
    if raw is None:
        raise NotFound(f"job {job_id} has no result (yet)")
    result: Result = _result_decoder.decode(raw)
    return result
