"""The webhooks actor, end to end: a job's events POSTed, signed, to a real HTTP server."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from conftest import Api, Service, connect_as

from actors.webhooks import signature
from ops.stack import free_port
from schemas import subjects
from tests.letters import stored_letter
from tests.waits import eventually, wait_for_value

CSV = b"a,b\n1,2\n"
EVERY = ["uploaded", "verifying", "verified", "processed"]


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def event(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


@dataclass
class Receiver:
    """An HTTP server taking webhooks: every request kept, each path answered with the
    statuses it is given in turn (200 once they run out)."""

    url: str
    received: list[Received] = field(default_factory=list)
    answers: dict[str, Iterator[int]] = field(default_factory=dict)

    def on(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    port = free_port()
    got = Receiver(url=f"http://127.0.0.1:{port}")

    async def take(request: web.Request) -> web.Response:
        got.received.append(Received(request.path, dict(request.headers), await request.read()))
        return web.Response(status=next(got.answers.get(request.path, iter(())), 200))

    app = web.Application()
    app.router.add_post("/{name}", take)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield got
    finally:
        await runner.cleanup()


async def register(api: Api, url: str, events: list[str] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"url": url} | ({"events": events} if events is not None else {})
    r = await api.post("/v1/webhooks", json=body)
    assert r.status_code == 201, r.text
    created: dict[str, Any] = r.json()
    return created


async def test_events_are_posted_signed(api: Api, receiver: Receiver, owner: str) -> None:
    every = await register(api, f"{receiver.url}/every", EVERY)
    ends = await register(api, f"{receiver.url}/ends")
    assert ends["events"] == ["rejected", "processed", "failed"]
    ticket, _ = await api.submit(CSV)

    async def all_sent() -> bool:
        return len(receiver.on("/every")) == 4 and len(receiver.on("/ends")) == 1

    await eventually(all_sent, within=30, what="the job's events at both webhooks")
    # Not in order (one slow receiver must not hold up the rest): each names its own.
    assert sorted(r.event["type"] for r in receiver.on("/every")) == sorted(EVERY)
    assert [r.event["type"] for r in receiver.on("/ends")] == ["processed"]
    for hook, request in [(every, r) for r in receiver.on("/every")] + [
        (ends, receiver.on("/ends")[0])
    ]:
        event, headers = request.event, request.headers
        assert event["job_id"] == ticket["job_id"]
        assert event["owner"] == owner
        assert headers["Content-Type"] == "application/json"
        assert headers["Conveyor-Webhook-Id"] == hook["webhook_id"]
        assert headers["Conveyor-Event-Id"] == event["id"]
        assert headers["Conveyor-Event-Type"] == event["type"]
        assert int(headers["Conveyor-Stream-Seq"]) > 0
        # Checked as a receiver would, from the secret given at creation.
        stamp, mac = headers["Conveyor-Signature"].split(",")
        timestamp = int(stamp.removeprefix("t="))
        expected = hmac.new(
            hook["secret"].encode(), f"{timestamp}.".encode() + request.body, hashlib.sha256
        ).hexdigest()
        assert hmac.compare_digest(mac.removeprefix("v1="), expected)
    seqs = [int(r.headers["Conveyor-Stream-Seq"]) for r in receiver.on("/every")]
    assert len(set(seqs)) == 4


def test_signature_is_hmac_sha256_of_time_and_body() -> None:
    body = b'{"id":"x"}'
    mac = hmac.new(b"whsec_k", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert signature("whsec_k", 1_700_000_000, body) == f"t=1700000000,v1={mac}"


async def test_failures_are_retried_then_dead_lettered_and_refusals_are_not(
    api: Api, receiver: Receiver, service: Service
) -> None:
    tries = service.settings.webhook_max_tries
    # `flaky` fails once, `down` every time, `gone` refuses for good; `fine` takes all.
    receiver.answers = {"/flaky": iter([429]), "/down": iter([503] * 100), "/gone": iter([410])}
    for name in ("flaky", "down", "gone", "fine"):
        await register(api, f"{receiver.url}/{name}", ["processed"])
    ticket, _ = await api.submit(CSV)
    nc = await connect_as(service.settings, "ops")
    try:
        js = nc.jetstream()
        letter = subjects.dead_letter("webhooks", ticket["job_id"])
        stored = await wait_for_value(
            lambda: stored_letter(js, letter), within=60, what="the event given up on"
        )
    finally:
        await nc.close()
    assert "webhooks to be tried again" in (stored.headers or {})["Conveyor-Error"]
    # Every try reached `down`; the others were not sent the event again once served.
    assert len(receiver.on("/down")) == tries
    assert len(receiver.on("/flaky")) == 2
    assert len(receiver.on("/gone")) == 1
    assert len(receiver.on("/fine")) == 1
