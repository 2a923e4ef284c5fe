"""WS /v1/events: the owner's events, from a stream sequence on, then live."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from typing import Any

import pytest
import websockets
from conftest import Api, Service, connect_as
from gateways import gateway_process

from gateway.feed import parse_after
from schemas import subjects

CSV = b"a,b\n1,2\n"
EXPECTED = ["uploaded", "verifying", "verified", "processed"]


def feed_url(service: Service, token: str, after: int | str | None = None) -> str:
    url = service.url.replace("http://", "ws://") + f"/v1/events?token={token}"
    return url if after is None else f"{url}&after={after}"


async def frames_until(
    ws: websockets.ClientConnection, job_id: str, last: str = "processed"
) -> list[dict[str, Any]]:
    """Frames until `job_id`'s event `last`."""
    frames: list[dict[str, Any]] = []
    async with asyncio.timeout(30):
        while True:
            frames.append(json.loads(await ws.recv()))
            event = frames[-1]["event"]
            if event["job_id"] == job_id and event["type"] == last:
                return frames


def types_of(frames: list[dict[str, Any]], job_id: str) -> list[str]:
    return [f["event"]["type"] for f in frames if f["event"]["job_id"] == job_id]


async def close_code(ws: websockets.ClientConnection) -> int | None:
    """The code the server closes with, frames before it read and dropped."""
    # Only a 1000 or 1001 ends the iteration quietly.
    with contextlib.suppress(websockets.ConnectionClosedError):
        async with asyncio.timeout(10):
            async for _ in ws:
                pass
    return ws.close_code


async def test_feed_catches_up_from_after_then_sends_live_events(
    api: Api, other_api: Api, service: Service, owner: str
) -> None:
    ticket, accepted = await api.submit(CSV)
    # Another owner's job, stored in the same range: never on this feed.
    theirs, _ = await other_api.submit(CSV)
    await api.wait_terminal(ticket["job_id"])
    async with websockets.connect(feed_url(service, api.token, accepted["seq"] - 1)) as ws:
        caught_up = await frames_until(ws, ticket["job_id"])
        # Submitted while the socket is open: relayed live.
        live_ticket, _ = await api.submit(CSV)
        live = await frames_until(ws, live_ticket["job_id"])
    frames = caught_up + live
    assert caught_up[0]["seq"] == accepted["seq"]
    assert types_of(frames, ticket["job_id"]) == EXPECTED
    assert types_of(frames, live_ticket["job_id"]) == EXPECTED
    assert {f["event"]["owner"] for f in frames} == {owner}
    assert theirs["job_id"] not in {f["event"]["job_id"] for f in frames}
    seqs = [f["seq"] for f in frames]
    assert seqs == sorted(set(seqs))  # one notification replica relays in stream order


async def test_feed_resumes_after_the_last_frame_seen(api: Api, service: Service) -> None:
    ticket, accepted = await api.submit(CSV)
    async with websockets.connect(feed_url(service, api.token, accepted["seq"] - 1)) as ws:
        first = await frames_until(ws, ticket["job_id"], last="verified")
    # Gone after `verified`: the rest, and nothing twice, from its sequence on.
    async with websockets.connect(feed_url(service, api.token, first[-1]["seq"])) as ws:
        rest = await frames_until(ws, ticket["job_id"])
    assert types_of(first + rest, ticket["job_id"]) == EXPECTED


async def test_feed_sends_an_event_once_however_often_it_is_relayed(
    api: Api, service: Service, owner: str
) -> None:
    ticket, accepted = await api.submit(CSV)
    await api.wait_terminal(ticket["job_id"])
    relay = await connect_as(service.settings, "notification")

    async def relay_again(frame: dict[str, Any]) -> None:
        headers = {subjects.SEQ_HEADER: str(frame["seq"])}
        data = json.dumps(frame["event"]).encode()
        await relay.publish(subjects.notify_owner(owner), data, headers=headers)

    try:
        async with websockets.connect(feed_url(service, api.token, accepted["seq"] - 1)) as ws:
            caught_up = await frames_until(ws, ticket["job_id"])
            # The relay of an event the catch-up sent, as a late notification would send
            # it; then a live one's again, as after a redelivery.
            await relay_again(caught_up[0])
            live_ticket, _ = await api.submit(CSV)
            live = await frames_until(ws, live_ticket["job_id"])
            await relay_again(live[1])
            # Then a last event of a job of its own, after both on the same connection:
            # once it is here, any repeat sent before it would have come first.
            last = dict(live[-1]["event"], job_id=str(uuid.uuid4()), id=str(uuid.uuid4()))
            await relay_again({"seq": 10**12, "event": last})
            live += await frames_until(ws, last["job_id"])
    finally:
        await relay.close()
    seqs = [f["seq"] for f in caught_up + live]
    assert len(seqs) == len(set(seqs)) == 9
    assert seqs[-1] == 10**12


async def test_feed_without_after_sends_only_new_events(api: Api, service: Service) -> None:
    before, _ = await api.submit(CSV)
    await api.wait_terminal(before["job_id"])
    async with websockets.connect(feed_url(service, api.token)) as ws:
        ticket, _ = await api.submit(CSV)
        frames = await frames_until(ws, ticket["job_id"])
    assert before["job_id"] not in {f["event"]["job_id"] for f in frames}
    # The socket subscribes as it opens, before the job is submitted: were the relay
    # of `uploaded` to come first all the same, the rest would still follow in order.
    got = types_of(frames, ticket["job_id"])
    assert got == EXPECTED[-len(got) :]
    assert got[-2:] == ["verified", "processed"]


@pytest.mark.parametrize("after", ["-1", "x", "1.5", "99999999999999999999", "", "\u0661"])
async def test_feed_refuses_a_bad_after(api: Api, service: Service, after: str) -> None:
    async with websockets.connect(feed_url(service, api.token, after)) as ws:
        assert await close_code(ws) == 4400


def test_parse_after() -> None:
    assert parse_after(None) is None
    assert parse_after("0") == 0
    assert parse_after("42") == 42
    assert parse_after("+4") is False


async def test_feed_needs_a_token(service: Service) -> None:
    url = service.url.replace("http://", "ws://") + "/v1/events"
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with websockets.connect(url):
            pass
    # Refused before the handshake is answered: the ASGI server says 403 for any reason.
    assert refused.value.response.status_code == 403


async def test_feed_closes_when_the_catch_up_is_too_long(api: Api, service: Service) -> None:
    ticket, accepted = await api.submit(CSV)
    await api.wait_terminal(ticket["job_id"])
    settings = service.settings.replace(feed_catch_up_events=3)
    async with (
        gateway_process(settings, "gateway-feed-catch-up") as gateway,
        websockets.connect(feed_url(gateway, api.token, accepted["seq"] - 1)) as ws,
    ):
        # Four events of the job at least are stored after `after`: the socket closes
        # before reading any, saying why.
        assert await close_code(ws) == 4416
        assert "over 3 events" in ws.close_reason


async def test_feed_refuses_an_after_past_the_end(api: Api, service: Service) -> None:
    _, accepted = await api.submit(CSV)
    async with websockets.connect(feed_url(service, api.token, accepted["seq"] + 10**9)) as ws:
        assert await close_code(ws) == 4400
        assert "past the stream's end" in ws.close_reason
