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
from nats.aio.msg import Msg

from actors.errors import TransientError
from actors.projection import columns, project_all, project_one
from schemas import subjects
from schemas.events import Envelope

if TYPE_CHECKING:
    from actors.projection import Connection


_EVENT_COLUMNS = ("seq", "event_id", "job_id", "type", "occurred_at", "envelope")
_INSERT_EVENTS = (
    "INSERT INTO job_events (seq, event_id, job_id, type, occurred_at, envelope)"
    " SELECT e.seq, e.event_id, e.job_id, e.type, e.occurred_at, e.envelope::json"
    " FROM unnest($1::bigint[], $2::uuid[], $3::uuid[], $4::text[], $5::timestamptz[],"
    " $6::text[]) AS e(seq, event_id, job_id, type, occurred_at, envelope)"
    " ON CONFLICT DO NOTHING RETURNING seq"
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
        called on each event in stream order (see `actors.projection`).

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
                rows = await conn.fetch(_INSERT_EVENTS, *columns(records))
                new = {r[0] for r in rows}
                applied = [(m.seq, e) for m, e in zip(batch, events, strict=True) if m.seq in new]
            if applied:
                await project_all(conn, applied, self._encoder, copy=copy)
            if watermarks:
                await self._mark(conn, marks)
        return Applied(applied=len(applied), skipped=len(batch) - len(applied))

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
            await project_one(conn, event, message.seq, self._encoder)
        return bool(inserted)
