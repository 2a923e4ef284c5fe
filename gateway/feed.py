"""WS /v1/events: every event of the caller's jobs, as they are stored.

Live frames come from the notification actor's relay on the owner's subject
(`notify.owners.<key>`). With `?after=SEQ` the socket first reads the JOBS stream
from SEQ to its end, so a client that keeps the `seq` of its last frame resumes
where it left off. Core NATS keeps nothing for a listener that was away: when the
gateway's NATS connection comes back, relays may have been lost meanwhile, so the
socket closes (1012) before sending anything more, and the client resumes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from asyncio import FIRST_COMPLETED
from collections import deque
from typing import Any

import msgspec
import structlog
from litestar import WebSocket, websocket
from litestar.exceptions import WebSocketDisconnect
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js.api import StreamState
from nats.js.errors import NotFoundError

from gateway.services import Services
from gateway.sockets import (
    CLOSE_BAD_REQUEST,
    CLOSE_EXPIRED,
    CLOSE_RANGE,
    CLOSE_RESTART,
    CLOSE_TOO_SLOW,
    CLOSE_TRY_AGAIN,
    claim_or_close,
    token_expiry,
    until_disconnect,
)
from schemas import subjects
from schemas.api import FeedFrame
from schemas.events import EventHead

# Relays held for a client that reads slower than its jobs change.
QUEUE_FRAMES = 1024
# Frames remembered to send none twice.
RECENT_FRAMES = 1024
# Re-check the token's expiry and the connection at least this often.
IDLE_SECONDS = 5.0

_heads = msgspec.json.Decoder(EventHead)
_frames = msgspec.json.Encoder()
log = structlog.get_logger()


def parse_after(value: str | None) -> int | bool | None:
    """`after` as a stream sequence; None when absent, False when it is not one."""
    if value is None:
        return None
    if not value.isascii() or not value.isdigit() or len(value) > 19:
        return False
    return int(value)


@websocket("/v1/events")
async def owner_events(
    socket: WebSocket[str, Any, Any], services: Services, after: str | None = None
) -> None:
    await socket.accept()
    start = parse_after(after)
    if start is False:
        await socket.close(code=CLOSE_BAD_REQUEST, reason="after must be a stream sequence")
        return
    owner = socket.user
    if not await claim_or_close(socket, services.sockets, owner):
        return
    try:
        await _feed(socket, services, owner, start if isinstance(start, int) else None)
    except WebSocketDisconnect:
        pass
    finally:
        services.sockets.release(owner)


def _frame(seq: int, data: bytes) -> str:
    return _frames.encode(FeedFrame(seq=seq, event=msgspec.Raw(data))).decode()


def _owned_by(data: bytes, owner: str) -> bool:
    try:
        return _heads.decode(data).owner == owner
    except msgspec.DecodeError:
        return False  # not an envelope: nothing the client could read either


async def _feed(
    socket: WebSocket[str, Any, Any], services: Services, owner: str, after: int | None
) -> None:
    relays: asyncio.Queue[tuple[int, bytes]] = asyncio.Queue(QUEUE_FRAMES)
    overflow = asyncio.Event()

    async def on_relay(msg: Msg) -> None:
        seq = int((msg.headers or {}).get(subjects.SEQ_HEADER, "0"))
        try:
            relays.put_nowait((seq, msg.data))
        except asyncio.QueueFull:
            overflow.set()

    reconnects = services.nc.stats["reconnects"]
    # Subscribed (and the server told, by the flush) before the stream's end is read:
    # an event stored after it is relayed to this socket.
    sub = await services.nc.subscribe(subjects.notify_owner(owner), cb=on_relay)
    gone = asyncio.create_task(until_disconnect(socket))
    getter: asyncio.Task[tuple[int, bytes]] | None = None
    expires_at = token_expiry(socket)
    # Relays of events up to here are not sent: the catch-up sent them, or they were
    # stored before a socket without `after` began.
    read_to = 0
    sent: deque[int] = deque(maxlen=RECENT_FRAMES)
    try:
        try:
            await services.nc.flush()
            state = (await services.js.stream_info(subjects.JOBS_STREAM)).state
            if after is None:
                # Where this socket begins: a relay of an event stored before it (the
                # notification actor may lag) is not sent, and a client that saw no
                # frame resumes from here.
                read_to = last = state.last_seq
            else:
                caught_up = await _catch_up(socket, services, owner, after, state)
                if caught_up is None:
                    return
                read_to, last = caught_up
        except NatsError as exc:
            log.warning("feed not set up", error=f"{type(exc).__name__}: {exc}")
            again = "reconnect" if after is None else f"reconnect with after={after}"
            await socket.close(code=CLOSE_TRY_AGAIN, reason=f"NATS did not answer: {again}")
            return
        while not gone.done():
            left = expires_at - time.time()
            if left <= 0:
                await socket.close(code=CLOSE_EXPIRED, reason="token expired")
                return
            if services.nc.stats["reconnects"] != reconnects:
                await socket.close(
                    code=CLOSE_RESTART, reason=f"events may be missing: resume with after={last}"
                )
                return
            if overflow.is_set():
                await socket.close(
                    code=CLOSE_TOO_SLOW, reason=f"fell behind: resume with after={last}"
                )
                return
            getter = asyncio.create_task(relays.get())
            await asyncio.wait(
                {getter, gone}, timeout=min(IDLE_SECONDS, left), return_when=FIRST_COMPLETED
            )
            # A get cancelled before it returned leaves its relay in the queue.
            if getter.cancel():
                continue
            seq, data = getter.result()
            # A relay the catch-up covered, or one sent again (a redelivered notification):
            # never a frame twice. Not `seq > last sent`: with several notification
            # replicas relays may come out of order, and none may be lost.
            if seq <= read_to or seq in sent or not _owned_by(data, owner):
                continue
            # Checked again right before sending: nothing after a gap goes out.
            if services.nc.stats["reconnects"] != reconnects:
                continue
            await socket.send_text(_frame(seq, data))
            sent.append(seq)
            last = max(last, seq)
    finally:
        gone.cancel()
        if getter is not None:
            getter.cancel()
        with contextlib.suppress(Exception):
            await sub.unsubscribe()


async def _catch_up(
    socket: WebSocket[str, Any, Any],
    services: Services,
    owner: str,
    after: int,
    state: StreamState,
) -> tuple[int, int] | None:
    """Sends the owner's stored events after `after`, oldest first, up to the stream's
    last sequence in `state`: that sequence and the last one sent (or `after`). None
    when the range can not be served (the socket is closed, saying why)."""
    limit = services.settings.feed_catch_up_events
    end = state.last_seq
    if after > end:
        await socket.close(
            code=CLOSE_BAD_REQUEST, reason=f"after={after} is past the stream's end ({end})"
        )
        return None
    if after + 1 < state.first_seq:
        await socket.close(
            code=CLOSE_RANGE,
            reason=f"events after {after} are no longer kept: list your jobs, then reconnect",
        )
        return None
    if end - after > limit:
        log.info("feed catch-up too far back", after=after, end=end, limit=limit)
        await socket.close(
            code=CLOSE_RANGE,
            reason=f"over {limit} events since {after}: list your jobs, then reconnect",
        )
        return None
    seq = last = after
    while seq < end:
        try:
            raw = await services.js.get_msg(
                subjects.JOBS_STREAM, seq=seq + 1, subject=subjects.STORED_JOBS, next=True
            )
        except NotFoundError:
            break  # the rest was removed meanwhile
        assert raw.seq is not None
        if raw.seq > end:
            break  # stored since: the relay brings it
        seq = raw.seq
        data = raw.data or b""
        if _owned_by(data, owner):
            await socket.send_text(_frame(seq, data))
            last = seq
    return end, last
