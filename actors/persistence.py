"""The persistence actor: applies job events to Postgres, once each, in stream order.

It is run by `actors.ordered`, one partition at a time: a batch of a partition's
events is one transaction holding the appends to `job_events`, the changes to
`jobs` and the partition's watermark (the last stream sequence applied). A crash
at any point applied all of a batch or none, and the reader resumes after the
watermark. An event seen twice (same sequence or same event id) changes nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
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
# What Postgres refuses for the data itself: retrying can never help.
_REFUSED = (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError, msgspec.DecodeError)


class Stored(msgspec.Struct, frozen=True, kw_only=True):
    """One message as read from the JOBS stream."""

    seq: int
    subject: str
    data: bytes
    headers: dict[str, str] | None = None

    @classmethod
    def of(cls, msg: Msg) -> Stored:
        return cls(
            seq=msg.metadata.sequence.stream,
            subject=msg.subject,
            data=msg.data,
            headers=msg.headers,
        )


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
                return await self._transaction(batch, epoch, watermarks, isolate=False)
            except _REFUSED:
                return await self._transaction(batch, epoch, watermarks, isolate=True)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise TransientError(f"Postgres unavailable: {exc}", delay=1.0) from exc

    async def _transaction(
        self, batch: Sequence[Stored], epoch: int, watermarks: bool, *, isolate: bool
    ) -> Applied:
        counts = Applied()
        marks: dict[int, int] = {}
        async with self._pool.acquire() as conn, conn.transaction():
            # FOR SHARE: a rebuild's bump of the epoch waits for us, or we see it.
            current = await conn.fetchval(
                "SELECT epoch FROM persistence_epoch WHERE id = 1 FOR SHARE"
            )
            if current != epoch:
                raise Fenced(epoch, current)
            for message in batch:
                marks[subjects.partition_of(message.subject)] = message.seq
                if not isolate:
                    applied = await self.apply(conn, self._decoder.decode(message.data), message)
                else:
                    try:
                        async with conn.transaction():  # a savepoint
                            event = self._decoder.decode(message.data)
                            applied = await self.apply(conn, event, message)
                    except _REFUSED as exc:
                        # Stored before commit: a retried batch publishes it again,
                        # and the dead-letter stream drops the repeat by its id.
                        await self._dead_letter(message, f"{type(exc).__name__}: {exc}")
                        counts.dead += 1
                        continue
                if applied:
                    counts.applied += 1
                else:
                    counts.skipped += 1
            if watermarks:
                await conn.executemany(
                    "INSERT INTO watermarks (stream, partition, seq) VALUES ($1, $2, $3)"
                    " ON CONFLICT (stream, partition) DO UPDATE"
                    " SET seq = GREATEST(watermarks.seq, EXCLUDED.seq), updated_at = now()",
                    [(self._stream, p, seq) for p, seq in marks.items()],
                )
        return counts

    async def apply(self, conn: Connection, event: Envelope, message: Stored) -> bool:
        """Append and project one event; False if it was applied before.

        "Before" means the same stream sequence or the same event id (a duplicate
        publish outside the stream's dedupe window): both are unique in `job_events`.
        """
        inserted = await conn.fetchval(
            "INSERT INTO job_events (seq, event_id, job_id, type, occurred_at, envelope)"
            " VALUES ($1, $2, $3, $4, $5, $6::jsonb)"
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
