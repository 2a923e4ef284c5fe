"""The persistence actor: applies every job event to Postgres, once, in stream order.

Each event is one transaction: the append to `job_events`, the change to `jobs`
and the watermark (the last stream sequence applied) commit together, so a crash
at any point either applied all three or none, and redelivery fills the gap.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import asyncpg
import msgspec

from actors.errors import PermanentError, TransientError
from actors.runtime import Delivery
from schemas import subjects
from schemas.events import (
    Envelope,
    Failed,
    Processed,
    Rejected,
    Uploaded,
    Verified,
    Verifying,
)

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    # A pooled connection or a plain one: both run the same statements.
    Connection = asyncpg.Connection[Any] | PoolConnectionProxy[Any]

_TERMINAL = "('succeeded', 'failed', 'rejected')"
_UPDATE = (
    "UPDATE jobs SET {sets}, updated_at = $2, last_seq = $3 "
    # A late event (another delivery order) never moves a job back.
    f"WHERE job_id = $1 AND status NOT IN {_TERMINAL} AND last_seq < $3"
)


class PersistenceActor:
    name: ClassVar[str] = "persistence"
    # A lost ack costs a redelivery that the watermark skips; confirming keeps that rare.
    confirm_ack: ClassVar[bool] = True
    fails_job: ClassVar[bool] = False
    # Events of a job must apply in order: a transient failure blocks, it does not skip.
    batch: ClassVar[int] = 64
    in_order: ClassVar[bool] = True

    def __init__(self, pool: asyncpg.Pool[Any], *, stream: str = subjects.JOBS_STREAM) -> None:
        self._pool = pool
        self._stream = stream
        self._encoder = msgspec.json.Encoder()

    async def handle(self, event: Envelope, delivery: Delivery) -> Sequence[Envelope]:
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                await self.apply(conn, event, delivery.stream_seq, delivery.data)
        except (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError) as exc:
            # Postgres can never store this event as it is: dead-letter it and move on,
            # rather than hold every later event back forever.
            raise PermanentError(f"Postgres refused the event: {exc}") from exc
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            # Down, restarting, overloaded: in-order actors retry this in place.
            raise TransientError(f"Postgres unavailable: {exc}", delay=1.0) from exc
        return []

    async def apply(self, conn: Connection, event: Envelope, seq: int, raw: bytes) -> bool:
        """Apply one event inside the caller's transaction; False if it was applied before.

        "Before" means the same stream sequence or the same event id (a duplicate
        publish outside the stream's dedupe window): both are unique in `job_events`.
        """
        inserted = await conn.fetchval(
            "INSERT INTO job_events (seq, event_id, job_id, type, occurred_at, envelope)"
            " VALUES ($1, $2, $3, $4, $5, $6::jsonb)"
            " ON CONFLICT DO NOTHING RETURNING true",
            seq,
            event.id,
            event.job_id,
            event.type,
            event.occurred_at,
            raw.decode(),
        )
        if inserted:
            await self._project(conn, event, seq)
        await conn.execute(
            "INSERT INTO watermarks (stream, seq) VALUES ($1, $2)"
            " ON CONFLICT (stream) DO UPDATE SET seq = GREATEST(watermarks.seq, EXCLUDED.seq),"
            " updated_at = now()",
            self._stream,
            seq,
        )
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
