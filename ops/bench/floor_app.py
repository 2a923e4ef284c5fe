"""The floor of `conveyor bench gateway`: the least a Litestar route served by uvicorn
can spend on one accepted write. `POST /v1/uploads/{upload_id}/complete` publishes
what the ceiling publishes (the `uploaded` event of `complete`: same subject, headers
and size, built anew per request) the way the gateway publishes (`publish_acked`, over
one shared inbox), awaits JetStream's ack and answers 202 with the sequence. No
token, no upload lookup, no log line, no middleware.

Between the ceiling (a bare nats-py loop) and Conveyor's `complete`, it shows what
the HTTP server and the framework cost with nothing of a gateway's own work on them.
Served like the baseline: `uvicorn ops.bench.floor_app:app --lifespan on` (one
process, uvloop, httptools, no access log; stock uvicorn, without the gateway's
one-write answers and collector tuning), settings from CONVEYOR_*.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import msgspec
from litestar import Litestar, post
from litestar.datastructures import State

from actors.inbox import Inbox
from actors.publisher import publish_acked
from ops.bench.ceiling import complete_message
from ops.connections import nats_connection
from schemas.settings import Settings


class Accepted(msgspec.Struct, frozen=True, kw_only=True):
    seq: int


@asynccontextmanager
async def _nats(app: Litestar) -> AsyncIterator[None]:
    # An entry point of its own (uvicorn imports it): its settings come from here.
    settings = Settings.from_env(os.environ)
    # The gateway's NATS user, as `complete` and the ceiling publish.
    async with nats_connection(settings, name="bench-floor", user="gateway") as nc:
        app.state.inbox = Inbox(nc)
        yield


@post("/v1/uploads/{upload_id:str}/complete", status_code=202)
async def complete(upload_id: str, state: State) -> Accepted:
    subject, payload, headers = complete_message()
    ack = await publish_acked(state.inbox, subject, payload, headers=headers, ack_wait=5.0)
    return Accepted(seq=ack.seq)


app = Litestar([complete], lifespan=[_nats], openapi_config=None, logging_config=None)
