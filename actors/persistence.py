"""The persistence actor: applies job events to Postgres, once each, in stream order.

It is run by `actors.ordered`, one partition at a time: a batch of a partition's
events is one transaction holding the appends to `job_events`, the changes to
`jobs` and the partition's watermark (the last stream sequence applied). A crash
at any point applied all of a batch or none, and the reader resumes after the
watermark. An event seen twice (same sequence or same event id) changes nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

import asyncpg
import msgspec
import structlog
from nats.aio.msg import Msg

from actors.errors import TransientError
from schemas import subjects
from schemas.events import Envelope, Failed, Processed, Rejected, Uploaded, Verified, Verifying

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    # A pooled connection or a plain one: both run the same statements.
    Connection = asyncpg.Connection[Any] | PoolConnectionProxy[Any]

log = structlog.get_logger("actors.persistence")

_UPDATE = (
    "UPDATE jobs SET {sets}, updated_at = $2, last_seq = $3 "
    # Only a later event changes a job: an older one arriving late (a replay beside
    # live work) never moves it back. A later one may move a finished job on: that
    # is a dead letter retried after its cause was fixed.
    "WHERE job_id = $1 AND last_seq < $3"
)
_EVENT_COLUMNS = ("seq", "event_id", "job_id", "type", "occurred_at", "envelope")
_JOB_COLUMNS = (
    "job_id", "owner", "upload_id", "filename", "content_type", "size", "object_key", "sha256",
    "mime", "status", "result", "result_key", "error", "created_at", "updated_at", "last_seq",
)  # fmt: skip
_INSERT_EVENTS = (
    "INSERT INTO job_events (seq, event_id, job_id, type, occurred_at, envelope)"
    " SELECT e.seq, e.event_id, e.job_id, e.type, e.occurred_at, e.envelope::json"
    " FROM unnest($1::bigint[], $2::uuid[], $3::uuid[], $4::text[], $5::timestamptz[],"
    " $6::text[]) AS e(seq, event_id, job_id, type, occurred_at, envelope)"
    " ON CONFLICT DO NOTHING RETURNING seq"
)
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
_WATERMARKS = (
    "INSERT INTO watermarks (stream, partition, seq)"
    " SELECT $1, p, s FROM unnest($2::integer[], $3::bigint[]) AS m(p, s)"
    " ON CONFLICT (stream, partition) DO UPDATE"
    " SET seq = GREATEST(watermarks.seq, EXCLUDED.seq), updated_at = now()"
)
# What Postgres refuses for the data itself: retrying can never help.
_REFUSED = (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError, msgspec.DecodeError)


class Stored(msgspec.Struct, frozen=True, kw_only=True):
    """One message as read from the JOBS stream."""

    seq: int
    subject: str
    data: bytes
    headers: dict[str, str] | None = None

    @classmethod
    def of(cls, msg: Msg, seq: int) -> Stored:
        """`seq` is the message's stream sequence, which the caller has read (`positions`)."""
        return cls(seq=seq, subject=msg.subject, data=msg.data, headers=msg.headers)


# `$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<time>.<pending>`
_ACK_TOKENS = 9


def positions(msg: Msg) -> tuple[int, int, int]:
    """(stream sequence, consumer sequence, pending) of a JetStream message, read from
    its reply subject as `msg.metadata` reads them, without building the rest of
    that (a datetime and three objects per message add up when reading millions)."""
    tokens = (msg.reply or "").split(".")
    if len(tokens) == _ACK_TOKENS and tokens[0] == "$JS" and tokens[1] == "ACK":
        return int(tokens[5]), int(tokens[6]), int(tokens[8])
    meta = msg.metadata  # the longer form (domain, account): nats.py reads it
    return meta.sequence.stream, meta.sequence.consumer, meta.num_pending


class _Fold:
    """A job row's changes from several events, as `_project` would make them one by one."""

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


def _columns(rows: list[tuple[Any, ...]]) -> list[list[Any]]:
    """Rows as columns: the arrays an `unnest(...)` statement takes (rows are not empty)."""
    return [list(column) for column in zip(*rows, strict=True)]


class Applied(msgspec.Struct, kw_only=True):
    applied: int = 0
    skipped: int = 0
    dead: int = 0


# Called with (message, reason) for an event Postgres can never store.
DeadLetter = Callable[[Stored, str], Awaitable[None]]


class Fenced(Exception):
    """The projections were rebuilt after this reader started: it must start over."""

    def __init__(self, mine: int, current: int) -> None:
        super().__init__(f"projections rebuilt (epoch {mine} -> {current})")
        self.mine = mine
        self.current = current


class PersistenceActor:
    name: ClassVar[str] = subjects.PERSISTENCE

    def __init__(
        self,
        pool: asyncpg.Pool[Any],
        dead_letter: DeadLetter,
        *,
        stream: str = subjects.JOBS_STREAM,
    ) -> None:
        self._pool = pool
        self._dead_letter = dead_letter
        self._stream = stream
        self._decoder = msgspec.json.Decoder(Envelope)
        self._encoder = msgspec.json.Encoder()

    @property
    def connections(self) -> int:
        """How many batches may be applied at once."""
        return self._pool.get_max_size()

    async def watermark(self, partition: int) -> int:
        seq = await self._pool.fetchval(
            "SELECT seq FROM watermarks WHERE stream = $1 AND partition = $2",
            self._stream,
            partition,
        )
        return int(seq or 0)

    async def epoch(self) -> int:
        """The projections' generation; a reader holds on to the one it started in."""
        return int(await self._pool.fetchval("SELECT epoch FROM persistence_epoch WHERE id = 1"))

    async def apply_batch(
        self, batch: Sequence[Stored], *, epoch: int, watermarks: bool = True
    ) -> Applied:
        """Apply `batch` (stream order) in one transaction with its watermarks.

        Refused (`Fenced`) if the projections were rebuilt since `epoch`. Fast path
        without savepoints; if Postgres refuses one event, the batch is redone with
        a savepoint per event and the refused ones are dead-lettered. `watermarks`
        False leaves the readers' positions alone (a partial replay).
        """
        if not batch:
            return Applied()
        try:
            try:
                return await self._bulk(batch, epoch, watermarks)
            except _REFUSED:
                return await self._isolated(batch, epoch, watermarks)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise TransientError(f"Postgres unavailable: {exc}", delay=1.0) from exc

    async def _isolated(self, batch: Sequence[Stored], epoch: int, watermarks: bool) -> Applied:
        """One savepoint per event: what Postgres refuses is dead-lettered, the rest applied."""
        counts = Applied()
        marks: dict[int, int] = {}
        async with self._pool.acquire() as conn, conn.transaction():
            await self._check_epoch(conn, epoch)
            for message in batch:
                marks[subjects.partition_of(message.subject)] = message.seq
                try:
                    async with conn.transaction():  # a savepoint
                        event = self._decoder.decode(message.data)
                        applied = await self.apply(conn, event, message)
                except _REFUSED as exc:
                    # Stored before commit: a retried batch publishes it again, and
                    # the dead-letter stream drops the repeat by its id.
                    await self._dead_letter(message, f"{type(exc).__name__}: {exc}")
                    counts.dead += 1
                    continue
                if applied:
                    counts.applied += 1
                else:
                    counts.skipped += 1
            if watermarks:
                await self._mark(conn, marks)
        return counts

    @staticmethod
    async def _check_epoch(conn: Connection, epoch: int) -> None:
        # FOR SHARE: a rebuild's bump of the epoch waits for us, or we see it.
        # The commit need not wait for its WAL flush: the watermark is in the same
        # transaction, so a Postgres crash that loses the last commits loses their
        # watermarks too, and the readers apply those events again from the stream.
        current = await conn.fetchval(
            "SELECT epoch FROM persistence_epoch, set_config('synchronous_commit', 'off', true)"
            " WHERE id = 1 FOR SHARE OF persistence_epoch"
        )
        if current != epoch:
            raise Fenced(epoch, current)

    async def _mark(self, conn: Connection, marks: dict[int, int]) -> None:
        await conn.execute(_WATERMARKS, self._stream, list(marks), list(marks.values()))

    async def _bulk(self, batch: Sequence[Stored], epoch: int, watermarks: bool) -> Applied:
        """The whole batch in a few set-based statements, with the effect of `apply`
        called on each event in stream order (see `_project_all`).

        Live work and rebuilds meet no event applied before (the reader starts after
        the watermark), so the rows are first COPied, as fast as Postgres takes them;
        if one was there after all (a second reader of the partition, an event
        published twice beyond the dedupe window), the batch is redone with
        `ON CONFLICT DO NOTHING`. A partial replay (no watermarks) goes that way at
        once: it re-applies what is mostly there.
        """
        events = [self._decoder.decode(m.data) for m in batch]
        if watermarks:
            try:
                return await self._bulk_transaction(batch, events, epoch, watermarks, copy=True)
            except asyncpg.UniqueViolationError:
                pass
        return await self._bulk_transaction(batch, events, epoch, watermarks, copy=False)

    async def _bulk_transaction(
        self,
        batch: Sequence[Stored],
        events: list[Envelope],
        epoch: int,
        watermarks: bool,
        *,
        copy: bool,
    ) -> Applied:
        marks: dict[int, int] = {}
        for message in batch:
            marks[subjects.partition_of(message.subject)] = message.seq
        async with self._pool.acquire() as conn, conn.transaction():
            await self._check_epoch(conn, epoch)
            # In `_EVENT_COLUMNS` order.
            records = [
                (m.seq, e.id, e.job_id, e.type, e.occurred_at, m.data.decode())
                for m, e in zip(batch, events, strict=True)
            ]
            if copy:
                await conn.copy_records_to_table(
                    "job_events", columns=_EVENT_COLUMNS, records=records
                )
                applied = list(zip([m.seq for m in batch], events, strict=True))
            else:
                rows = await conn.fetch(_INSERT_EVENTS, *_columns(records))
                new = {r[0] for r in rows}
                applied = [(m.seq, e) for m, e in zip(batch, events, strict=True) if m.seq in new]
            if applied:
                await self._project_all(conn, applied, copy=copy)
            if watermarks:
                await self._mark(conn, marks)
        return Applied(applied=len(applied), skipped=len(batch) - len(applied))

    async def _project_all(
        self, conn: Connection, applied: list[tuple[int, Envelope]], *, copy: bool
    ) -> None:
        """Projects newly appended events (stream order) onto `jobs`.

        Equivalent to `_project` on each in turn: an `uploaded` inserts the row
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
                            fold.add(later_seq, later, self._encoder)
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
            rows = await conn.fetch(_INSERT_JOBS, *_columns([f.insert_row() for f in inserts]))
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
                    fold.add(seq, event, self._encoder)
            if fold.changed:
                updates.append(fold)
        if updates:
            await conn.execute(_UPDATE_JOBS, *_columns([f.update_row() for f in updates]))

    async def apply(self, conn: Connection, event: Envelope, message: Stored) -> bool:
        """Append and project one event; False if it was applied before.

        "Before" means the same stream sequence or the same event id (a duplicate
        publish outside the stream's dedupe window): both are unique in `job_events`.
        """
        inserted = await conn.fetchval(
            "INSERT INTO job_events (seq, event_id, job_id, type, occurred_at, envelope)"
            " VALUES ($1, $2, $3, $4, $5, $6::json)"
            " ON CONFLICT DO NOTHING RETURNING true",
            message.seq,
            event.id,
            event.job_id,
            event.type,
            event.occurred_at,
            message.data.decode(),
        )
        if inserted:
            await self._project(conn, event, message.seq)
        return bool(inserted)

    async def _project(self, conn: Connection, event: Envelope, seq: int) -> None:
        at = event.occurred_at
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
            case Verifying():
                await conn.execute(
                    _UPDATE.format(sets="status = 'verifying'"), event.job_id, at, seq
                )
            case Verified() as d:
                await conn.execute(
                    _UPDATE.format(sets="status = 'processing', sha256 = $4, mime = $5"),
                    event.job_id,
                    at,
                    seq,
                    d.sha256,
                    d.mime,
                )
            case Processed() as d:
                await conn.execute(
                    _UPDATE.format(sets="status = 'succeeded', result = $4::json, result_key = $5"),
                    event.job_id,
                    at,
                    seq,
                    self._encoder.encode(d.result).decode(),
                    d.result_key,
                )
            case Rejected() as d:
                await conn.execute(
                    _UPDATE.format(sets="status = 'rejected', error = $4"),
                    event.job_id,
                    at,
                    seq,
                    d.reason,
                )
            case Failed() as d:
                await conn.execute(
                    _UPDATE.format(sets="status = 'failed', error = $4"),
                    event.job_id,
                    at,
                    seq,
                    d.reason,
                )
