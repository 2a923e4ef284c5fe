"""Job events projected onto `jobs` rows: one at a time, or a batch folded set-wise.

Both ways give the same rows. An `uploaded` inserts its job's row unless it exists;
every other event changes the row only if it is later than the row's `last_seq`.
`actors.persistence` runs these inside the transaction that appends the events.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

import msgspec

from schemas.events import Envelope, Failed, Processed, Rejected, Uploaded, Verified, Verifying

if TYPE_CHECKING:
    import asyncpg
    from asyncpg.pool import PoolConnectionProxy

    # A pooled connection or a plain one: both run the same statements.
    Connection = asyncpg.Connection[Any] | PoolConnectionProxy[Any]

_UPDATE = (
    "UPDATE jobs SET {sets}, updated_at = $2, last_seq = $3 "
    # Only a later event changes a job: an older one arriving late (a replay beside
    # live work) never moves it back. A later one may move a finished job on: that
    # is a dead letter retried after its cause was fixed.
    "WHERE job_id = $1 AND last_seq < $3"
)
_JOB_COLUMNS = (
    "job_id", "owner", "upload_id", "filename", "content_type", "size", "object_key", "sha256",
    "mime", "status", "result", "result_key", "error", "created_at", "updated_at", "last_seq",
)  # fmt: skip
_INSERT_JOBS = (
    "INSERT INTO jobs (job_id, owner, upload_id, filename, content_type, size, object_key,"
    " sha256, mime, status, result, result_key, error, created_at, updated_at, last_seq)"
    " SELECT j.job_id, j.owner, j.upload_id, j.filename, j.content_type, j.size,"
    " j.object_key, j.sha256, j.mime, j.status, j.result::json, j.result_key, j.error,"
    " j.created_at, j.updated_at, j.last_seq"
    " FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::text[], $5::text[], $6::bigint[],"
    " $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[],"
    " $14::timestamptz[], $15::timestamptz[], $16::bigint[])"
    " AS j(job_id, owner, upload_id, filename, content_type, size, object_key, sha256, mime,"
    " status, result, result_key, error, created_at, updated_at, last_seq)"
    " ON CONFLICT (job_id) DO NOTHING RETURNING job_id"
)
# Locked: the fold is computed from `last_seq` as it stays until we commit.
_LOCK_JOBS = (
    "SELECT job_id, last_seq FROM jobs WHERE job_id = ANY($1::uuid[]) ORDER BY job_id FOR UPDATE"
)
_UPDATE_JOBS = (
    "UPDATE jobs SET status = u.status, updated_at = u.updated_at, last_seq = u.last_seq,"
    " sha256 = CASE WHEN u.verified THEN u.sha256 ELSE jobs.sha256 END,"
    " mime = CASE WHEN u.verified THEN u.mime ELSE jobs.mime END,"
    " result = CASE WHEN u.processed THEN u.result::json ELSE jobs.result END,"
    " result_key = CASE WHEN u.processed THEN u.result_key ELSE jobs.result_key END,"
    " error = CASE WHEN u.ended THEN u.error ELSE jobs.error END"
    " FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::bigint[], $5::bool[],"
    " $6::text[], $7::text[], $8::bool[], $9::text[], $10::text[], $11::bool[], $12::text[])"
    " AS u(job_id, status, updated_at, last_seq, verified, sha256, mime, processed, result,"
    " result_key, ended, error)"
    " WHERE jobs.job_id = u.job_id AND jobs.last_seq < u.last_seq"
)


class _Fold:
    """A job row's changes from several events, as `project_one` would make them one by one."""

    __slots__ = (
        "changed",
        "created_at",
        "ended",
        "error",
        "job_id",
        "last_seq",
        "mime",
        "owner",
        "processed",
        "result",
        "result_key",
        "sha256",
        "status",
        "updated_at",
        "upload",
        "verified",
    )

    def __init__(self, *, job_id: uuid.UUID, last_seq: int) -> None:
        self.job_id = job_id
        self.last_seq = last_seq
        self.changed = False
        self.status = ""
        self.updated_at: datetime | None = None
        self.verified = self.processed = self.ended = False
        self.sha256: str | None = None
        self.mime: str | None = None
        self.result: str | None = None
        self.result_key: str | None = None
        self.error: str | None = None
        self.upload: Uploaded | None = None
        self.owner = ""
        self.created_at: datetime | None = None

    @classmethod
    def of_upload(cls, seq: int, event: Envelope, data: Uploaded) -> _Fold:
        fold = cls(job_id=event.job_id, last_seq=seq)
        fold.upload = data
        fold.owner = event.owner
        fold.status = "queued"
        fold.created_at = fold.updated_at = event.occurred_at
        return fold

    def add(self, seq: int, event: Envelope, encoder: msgspec.json.Encoder) -> None:
        """The effect of one later event (never an `uploaded`: that one only inserts)."""
        match event.data:
            case Verifying():
                self.status = "verifying"
            case Verified() as d:
                self.status = "processing"
                self.verified = True
                self.sha256, self.mime = d.sha256, d.mime
            case Processed() as d:
                self.status = "succeeded"
                self.processed = True
                self.result = encoder.encode(d.result).decode()
                self.result_key = d.result_key
            case Rejected() as d:
                self.status = "rejected"
                self.ended = True
                self.error = d.reason
            case Failed() as d:
                self.status = "failed"
                self.ended = True
                self.error = d.reason
            case _:
                return
        self.changed = True
        self.last_seq = seq
        self.updated_at = event.occurred_at

    def insert_row(self) -> tuple[Any, ...]:
        """The new `jobs` row, in `_JOB_COLUMNS` order (as `_INSERT_JOBS` takes them)."""
        u = self.upload
        assert u is not None
        return (
            self.job_id, self.owner, u.upload_id, u.filename, u.content_type, u.size, u.key,
            self.sha256, self.mime, self.status, self.result, self.result_key, self.error,
            self.created_at, self.updated_at, self.last_seq,
        )  # fmt: skip

    def update_row(self) -> tuple[Any, ...]:
        """The changes to an existing row, in the order `_UPDATE_JOBS` takes them."""
        return (
            self.job_id, self.status, self.updated_at, self.last_seq, self.verified, self.sha256,
            self.mime, self.processed, self.result, self.result_key, self.ended, self.error,
        )  # fmt: skip


def columns(rows: list[tuple[Any, ...]]) -> list[list[Any]]:
    """Rows as columns: the arrays an `unnest(...)` statement takes (rows are not empty)."""
    return [list(column) for column in zip(*rows, strict=True)]


async def project_all(
    conn: Connection,
    applied: list[tuple[int, Envelope]],
    encoder: msgspec.json.Encoder,
    *,
    copy: bool,
) -> None:
    """Projects newly appended events (stream order) onto `jobs`.

    Equivalent to `project_one` on each in turn: an `uploaded` inserts the row
    unless it exists, and every other event updates it if its sequence is past
    the row's `last_seq`. So a job whose row is absent is inserted once with
    the events after its first `uploaded` folded in (those before it found no
    row); for the rest, the events past the row's `last_seq` (the locked row,
    read once) are folded into one update.
    """
    by_job: dict[uuid.UUID, list[tuple[int, Envelope]]] = {}
    for seq, event in applied:
        by_job.setdefault(event.job_id, []).append((seq, event))
    inserts: list[_Fold] = []
    for job_events in by_job.values():
        for i, (seq, event) in enumerate(job_events):
            if isinstance(event.data, Uploaded):
                fold = _Fold.of_upload(seq, event, event.data)
                for later_seq, later in job_events[i + 1 :]:
                    if not isinstance(later.data, Uploaded):
                        fold.add(later_seq, later, encoder)
                inserts.append(fold)
                break
    inserted: set[uuid.UUID] = set()
    if inserts and copy:
        # No row yet for a job uploaded in this batch, or the batch is redone.
        await conn.copy_records_to_table(
            "jobs", columns=_JOB_COLUMNS, records=[f.insert_row() for f in inserts]
        )
        inserted = {f.job_id for f in inserts}
    elif inserts:
        rows = await conn.fetch(_INSERT_JOBS, *columns([f.insert_row() for f in inserts]))
        inserted = {r[0] for r in rows}
    rest = [job for job in by_job if job not in inserted]
    if not rest:
        return
    rows = await conn.fetch(_LOCK_JOBS, rest)
    updates: list[_Fold] = []
    for row in rows:
        fold = _Fold(job_id=row[0], last_seq=row[1])
        for seq, event in by_job[row[0]]:
            if seq > fold.last_seq and not isinstance(event.data, Uploaded):
                fold.add(seq, event, encoder)
        if fold.changed:
            updates.append(fold)
    if updates:
        await conn.execute(_UPDATE_JOBS, *columns([f.update_row() for f in updates]))


async def project_one(
    conn: Connection, event: Envelope, seq: int, encoder: msgspec.json.Encoder
) -> None:
    """One event's change to its job's row, in a statement of its own."""
    at = event.occurred_at
    values: tuple[str | None, ...]
    match event.data:
        case Uploaded() as d:
            await conn.execute(
                "INSERT INTO jobs (job_id, owner, upload_id, filename, content_type, size,"
                " object_key, status, created_at, updated_at, last_seq)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, 'queued', $8, $8, $9)"
                " ON CONFLICT (job_id) DO NOTHING",
                event.job_id,
                event.owner,
                d.upload_id,
                d.filename,
                d.content_type,
                d.size,
                d.key,
                at,
                seq,
            )
            return
        case Verifying():
            sets, values = "status = 'verifying'", ()
        case Verified() as d:
            sets, values = "status = 'processing', sha256 = $4, mime = $5", (d.sha256, d.mime)
        case Processed() as d:
            sets = "status = 'succeeded', result = $4::json, result_key = $5"
            values = (encoder.encode(d.result).decode(), d.result_key)
        case Rejected() as d:
            sets, values = "status = 'rejected', error = $4", (d.reason,)
        case Failed() as d:
            sets, values = "status = 'failed', error = $4", (d.reason,)
        case _:
            return
    await conn.execute(_UPDATE.format(sets=sets), event.job_id, at, seq, *values)
