"""The Idempotency-Key layer when NATS goes away while a request runs."""

from __future__ import annotations

import httpx
import pytest
from litestar import Litestar, Response, post
from nats.aio.client import Client as NATS

from gateway.idempotency import IdempotencyMiddleware


@pytest.mark.parametrize("status", [201, 400])
async def test_the_answer_goes_out_when_its_outcome_can_not_be_recorded(
    nc: NATS, bucket: str, status: int
) -> None:
    js = nc.jetstream()
    kv = await js.key_value(bucket)

    @post("/things")
    async def make() -> Response[dict[str, str]]:
        # The bucket is gone by the time the outcome is recorded, as when NATS is down.
        await js.delete_key_value(bucket)
        return Response({"made": str(status)}, status_code=status)

    app = Litestar([make], middleware=[IdempotencyMiddleware(kv, max_body=1024)])
    # In this event loop (as the gateway runs it), so the handler can use `nc`.
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        answer = await client.post("/things", json={}, headers={"Idempotency-Key": "k1"})
    # The handler's own answer, not a 500 for the bookkeeping that failed after it.
    assert answer.status_code == status
    assert answer.json() == {"made": str(status)}
