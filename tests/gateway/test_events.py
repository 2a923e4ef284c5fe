"""Job events: over the WebSocket and to a plain NATS subscriber, in order."""

from __future__ import annotations

import asyncio
import json
import uuid
from contextlib import AsyncExitStack

import asyncpg
import msgspec
import nats
import pytest
import websockets
from conftest import ENVELOPE_FIELDS, Api, Service, connect_as
from gateways import gateway_process
from nats.aio.client import Client as NATS
from websockets import ClientConnection

from actors.projection import project_one
from actors.publisher import Publisher
from gateway.auth import issue_token
from schemas.events import Verifying, follow_up
from tests.events import uploaded_event
from tests.waits import wait_for_value

EXPECTED = ["uploaded", "verifying", "verified", "processed"]


def ws_url(service: Service, job_id: str) -> str:
    return service.url.replace("http://", "ws://") + f"/v1/jobs/{job_id}/events"


async def read_all(ws: websockets.ClientConnection) -> list[dict[str, object]]:
    events = []
    async with asyncio.timeout(30):
        async for frame in ws:
            events.append(json.loads(frame))
    return events


async def test_websocket_live_events_in_order(api: Api, service: Service) -> None:
    ticket, _ = await api.submit(b"a,b\n1,2\n")
    headers = {"Authorization": f"Bearer {api.token}"}
    async with websockets.connect(
        ws_url(service, ticket["job_id"]), additional_headers=headers
    ) as ws:
        events = await read_all(ws)
        assert ws.close_code == 1000
    assert [e["type"] for e in events] == EXPECTED
    assert all(set(e) == ENVELOPE_FIELDS for e in events)
    assert {e["job_id"] for e in events} == {ticket["job_id"]}
    # Each follow-up names its cause: a chain from the upload to the result.
    uploaded, verifying, verified, processed = events
    assert uploaded["causation_id"] is None
    assert verifying["causation_id"] == uploaded["id"]
    assert verified["causation_id"] == uploaded["id"]
    assert processed["causation_id"] == verified["id"]
    assert len({e["correlation_id"] for e in events}) == 1
    assert events[-1]["data"]["result"]["kind"] == "table"  # type: ignore[index]


async def test_websocket_history_after_the_fact_with_query_token(
    api: Api, service: Service
) -> None:
    ticket, _ = await api.submit(b"a,b\n1,2\n")
    await api.wait_terminal(ticket["job_id"])
    url = ws_url(service, ticket["job_id"]) + f"?token={api.token}"
    async with websockets.connect(url) as ws:
        events = await read_all(ws)
    assert [e["type"] for e in events] == EXPECTED


async def test_websocket_refuses_other_owner_and_no_token(
    api: Api, other_api: Api, service: Service
) -> None:
    ticket, _ = await api.submit(b"a\n1\n")
    url = ws_url(service, ticket["job_id"]) + f"?token={other_api.token}"
    async with websockets.connect(url) as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4404
    with pytest.raises(websockets.InvalidStatus):
        async with websockets.connect(ws_url(service, ticket["job_id"])):
            pass
    with pytest.raises((websockets.InvalidStatus, websockets.ConnectionClosed)):
        async with websockets.connect(ws_url(service, str(uuid.uuid4())) + "?token=junk") as ws:
            await asyncio.wait_for(ws.recv(), 10)


async def test_nats_subscriber_sees_events_in_order(api: Api, service: Service) -> None:
    content = b"a,b\n1,2\n"
    ticket = await api.create_upload(content)
    # The read-only user that outside subscribers get.
    nc = await connect_as(service.settings, "subscriber")
    try:
        received: list[tuple[str, dict[str, object], dict[str, str]]] = []
        done = asyncio.Event()

        async def on_msg(msg: nats.aio.msg.Msg) -> None:
            received.append((msg.subject, json.loads(msg.data), msg.headers or {}))
            if msg.subject.endswith(".processed"):
                done.set()

        await nc.subscribe(f"jobs.{ticket['job_id']}.>", cb=on_msg)
        await nc.flush()
        assert (await api.put(ticket, content)).status_code == 200
        r = await api.post(f"/v1/uploads/{ticket['upload_id']}/complete")
        assert r.status_code == 202
        await asyncio.wait_for(done.wait(), 30)
    finally:
        await nc.close()
    assert [s.rsplit(".", 1)[1] for s, _, _ in received] == EXPECTED
    for subject, envelope, headers in received:
        assert subject == f"jobs.{ticket['job_id']}.{envelope['type']}"
        assert headers["Nats-Msg-Id"] == envelope["id"]
        assert envelope["owner"]
        assert envelope["correlation_id"]


async def open_job(service: Service, nc: NATS, owner: str) -> str:
    """A job that never ends: its row as persistence makes it of an `uploaded` never
    published (the upload actor would end the job), and one event to send."""
    uploaded = uploaded_event(owner, filename="open.csv", size=1)
    conn = await asyncpg.connect(service.settings.database_url)
    try:
        await project_one(conn, uploaded, 0, msgspec.json.Encoder())
    finally:
        await conn.close()
    await Publisher(nc.jetstream()).publish(follow_up(uploaded, Verifying(), source="test"))
    return str(uploaded.job_id)


async def first_frame(sockets: AsyncExitStack, url: str) -> tuple[ClientConnection, str | int]:
    """A socket (closed with `sockets`) and its first frame's event type, or its close code."""
    ws = await websockets.connect(url)
    sockets.push_async_callback(ws.close)
    try:
        frame = await asyncio.wait_for(ws.recv(), 10)
    except websockets.ConnectionClosed as closed:
        return ws, closed.rcvd.code if closed.rcvd is not None else "no close frame"
    return ws, json.loads(frame)["type"]


async def test_websockets_per_owner_are_capped(service: Service, nc: NATS) -> None:
    owner, other = f"ws-cap-{uuid.uuid4().hex[:8]}", f"ws-other-{uuid.uuid4().hex[:8]}"
    # Two jobs of the owner: the count is the owner's, not a job's.
    mine = [await open_job(service, nc, owner) for _ in range(2)]
    theirs = await open_job(service, nc, other)
    settings = service.settings.replace(max_sockets_per_owner=2)
    async with gateway_process(settings, "gateway-socket-cap") as gateway, AsyncExitStack() as ws:

        def url(o: str, job: str) -> str:
            return ws_url(gateway, job) + f"?token={issue_token(service.settings, o)}"

        # Each waits for its frame: the gateway counts a socket before it sends.
        first, kind = await first_frame(ws, url(owner, mine[0]))
        assert kind == "verifying"
        _, kind = await first_frame(ws, url(owner, mine[1]))
        assert kind == "verifying"
        _, code = await first_frame(ws, url(owner, mine[0]))
        assert code == 4429
        # Another owner is not held to this one's count.
        _, kind = await first_frame(ws, url(other, theirs))
        assert kind == "verifying"
        # A socket closed gives its place back once the gateway sees it go.
        await first.close()

        async def reopened() -> str | None:
            _, answer = await first_frame(ws, url(owner, mine[1]))
            assert answer in ("verifying", 4429)
            return "reopened" if answer == "verifying" else None

        await wait_for_value(reopened, within=10, what="a socket after one closed")
