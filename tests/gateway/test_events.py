"""Job events: over the WebSocket and to a plain NATS subscriber, in order."""

from __future__ import annotations

import asyncio
import json
import uuid

import nats
import pytest
import websockets
from conftest import ENVELOPE_FIELDS, Api, Service, connect_as

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
