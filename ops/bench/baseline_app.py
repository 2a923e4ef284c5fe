"""The baseline of `conveyor bench gateway`: what one would write instead of Conveyor's
gateway, a FastAPI app that validates the same body and enqueues a Celery task on the
same Redis (the broker; the task is enqueued, never run here).

Served like the gateway: `uvicorn ops.bench.baseline_app:app` (one process, uvloop,
httptools, no access log). The broker URL comes from BENCH_BROKER_URL.
The route is `async def`, the enqueue (a Redis round trip) then blocking the event
loop. A `def` route, run in the threadpool as FastAPI recommends for blocking calls, was
tried: on the 2-core machine the `async def` one peaked higher (about 1.8x at 64
connections), so it is the baseline measured: the faster one.
"""

from __future__ import annotations

import os
from typing import Annotated, Any

from celery import Celery  # type: ignore[import-untyped]
from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field

celery = Celery("baseline", broker=os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/0"))
celery.conf.update(task_serializer="json", accept_content=["json"], broker_pool_limit=64)


@celery.task(name="baseline.process_upload")  # type: ignore[untyped-decorator]
def process_upload(upload: dict[str, Any]) -> None:
    """Never run by the benchmark: only enqueued."""


class UploadBody(BaseModel):
    """The same rules as `schemas.api.UploadRequest`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    filename: Annotated[str, Field(min_length=1, max_length=1024, pattern=r"^[^\x00-\x1f\x7f]+$")]
    content_type: Annotated[
        str, Field(min_length=3, max_length=127, pattern=r"^[\w.+-]+/[\w.+-]+$")
    ]
    size: Annotated[int, Field(ge=0)]


class Queued(BaseModel):
    task_id: str
    status: str


app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)


@app.post("/v1/uploads", status_code=202)
async def enqueue(body: UploadBody) -> Queued:
    result = process_upload.delay(body.model_dump())
    return Queued(task_id=result.id, status="queued")
