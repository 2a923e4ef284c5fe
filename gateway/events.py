"""WS /v1/jobs/{job_id}/events: the job's events so far, then live ones, in order.

History comes from the JOBS stream (complete, ordered); live events come from
the notification actor's relay on core NATS, subscribed *before* history is
read and de-duplicated by stream sequence, so nothing falls between the two.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any

from litestar import WebSocket, websocket
from litestar.exceptions import WebSocketDisconnect
from nats.aio.msg import Msg
from nats.js.errors import NotFoundError

from gateway.jobs import find_job
from gateway.services import Services
from schemas import subjects
from schemas.events import TERMINAL

# Application close codes (4000-4999): 4404 mirrors HTTP 404.
CLOSE_NOT_FOUND = 4404


def _event_type(subject: str) -> str:
    return subject.rsplit(".", 1)[-1]


async def _history(services: Services, job_id: str) -> list[tuple[int, str, bytes]]:
    found: list[tuple[int, str, bytes]] = []
    seq = 1
    while True:
        try:
            raw = await services.js.get_msg(
                subjects.JOBS_STREAM, seq=seq, subject=subjects.job_events(job_id), next=True
            )
        except NotFoundError:
            return found
        assert raw.seq is not None
        found.append((raw.seq, raw.subject or "", raw.data or b""))
        seq = raw.seq + 1


@websocket("/v1/jobs/{job_id:str}/events")
async def job_events(socket: WebSocket[str, Any, Any], job_id: str, services: Services) -> None:
    await socket.accept()
    try:
        jid = uuid.UUID(job_id)
    except ValueError:
        await socket.close(code=CLOSE_NOT_FOUND, reason="no such job")
        return
    if await find_job(services, jid, socket.user) is None:
        await socket.close(code=CLOSE_NOT_FOUND, reason="no such job")
        return

    live: asyncio.Queue[Msg] = asyncio.Queue()

    async def on_live(msg: Msg) -> None:
        live.put_nowait(msg)

    sub = await services.nc.subscribe(subjects.notify_job_all(jid), cb=on_live)
    try:
        last_seq = 0
        for seq, subject, data in await _history(services, str(jid)):
            await socket.send_text(data.decode())
            last_seq = seq
            if _event_type(subject) in TERMINAL:
                await socket.close()
                return
        await _relay_live(socket, live, last_seq)
    except WebSocketDisconnect:
        pass
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()


async def _relay_live(
    socket: WebSocket[str, Any, Any], live: asyncio.Queue[Msg], last_seq: int
) -> None:
    # Watch for the client going away while we wait for events.
    gone = asyncio.create_task(_until_disconnect(socket))
    try:
        while True:
            getter = asyncio.create_task(live.get())
            done, _ = await asyncio.wait({getter, gone}, return_when=asyncio.FIRST_COMPLETED)
            if gone in done:
                getter.cancel()
                return
            msg = getter.result()
            seq = int((msg.headers or {}).get(subjects.SEQ_HEADER, "0"))
            if seq <= last_seq:
                continue  # already sent from history
            last_seq = seq
            await socket.send_text(msg.data.decode())
            if _event_type(msg.subject) in TERMINAL:
                await socket.close()
                return
    finally:
        gone.cancel()


async def _until_disconnect(socket: WebSocket[str, Any, Any]) -> None:
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            await socket.receive_data(mode="text")
