"""WS /v1/jobs/{job_id}/events: the job's events so far, then live ones, in order.

The JOBS stream is the only source of what is sent, read by sequence from where
the socket left off. The notification actor's relay on core NATS only says "look
again"; a relay lost in a reconnect or arriving out of order costs at most the
poll interval, never an event.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from typing import Any

from litestar import WebSocket, websocket
from litestar.exceptions import WebSocketDisconnect
from nats.aio.msg import Msg
from nats.js.errors import NotFoundError

from gateway.jobs import find_job
from gateway.services import Services
from gateway.sockets import (
    CLOSE_EXPIRED,
    CLOSE_NOT_FOUND,
    claim_or_close,
    token_expiry,
    until_disconnect,
)
from schemas import subjects
from schemas.events import TERMINAL

# Re-read the stream this often even without a relay.
POLL_SECONDS = 5.0


async def _events_after(
    services: Services, job_id: uuid.UUID, seq: int
) -> list[tuple[int, str, bytes]]:
    """The job's stored events with a stream sequence above `seq`, oldest first."""
    found: list[tuple[int, str, bytes]] = []
    while True:
        try:
            raw = await services.js.get_msg(
                subjects.JOBS_STREAM,
                seq=seq + 1,
                subject=subjects.stored_job_events(job_id),
                next=True,
            )
        except NotFoundError:
            return found
        assert raw.seq is not None
        found.append((raw.seq, raw.subject or "", raw.data or b""))
        seq = raw.seq


@websocket("/v1/jobs/{job_id:str}/events")
async def job_events(socket: WebSocket[str, Any, Any], job_id: str, services: Services) -> None:
    await socket.accept()
    try:
        jid = uuid.UUID(job_id)
    except ValueError:
        await socket.close(code=CLOSE_NOT_FOUND, reason="no such job")
        return
    owner = socket.user
    # Counted before the lookup: an owner at the cap costs no query per attempt.
    if not await claim_or_close(socket, services.sockets, owner):
        return
    try:
        if await find_job(services, jid, owner) is None:
            await socket.close(code=CLOSE_NOT_FOUND, reason="no such job")
            return
        await _follow(socket, services, jid)
    finally:
        services.sockets.release(owner)


async def _follow(socket: WebSocket[str, Any, Any], services: Services, jid: uuid.UUID) -> None:
    """Sends the job's events until it ends, the token expires or the client leaves."""
    wake = asyncio.Event()

    async def on_relay(_msg: Msg) -> None:
        wake.set()

    # Subscribed before the first read: an event stored after that read is relayed.
    sub = await services.nc.subscribe(subjects.notify_job_all(jid), cb=on_relay)
    gone = asyncio.create_task(until_disconnect(socket))
    expires_at = token_expiry(socket)
    try:
        last_seq = 0
        while not gone.done():
            left = expires_at - time.time()
            if left <= 0:
                await socket.close(code=CLOSE_EXPIRED, reason="token expired")
                return
            wake.clear()
            for seq, subject, data in await _events_after(services, jid, last_seq):
                await socket.send_text(data.decode())
                last_seq = seq
                if subjects.event_type_of(subject) in TERMINAL:
                    await socket.close()
                    return
            waiter = asyncio.create_task(wake.wait())
            await asyncio.wait(
                {waiter, gone},
                timeout=min(POLL_SECONDS, left),
                return_when=asyncio.FIRST_COMPLETED,
            )
            waiter.cancel()
    except WebSocketDisconnect:
        pass
    finally:
        gone.cancel()
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
