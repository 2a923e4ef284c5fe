"""Operations routes (`admin` scope): what `conveyor status` shows, over HTTP."""

from __future__ import annotations

from litestar import get

from gateway.openapi import ProblemOperation, problems
from gateway.scopes import ADMIN
from gateway.services import Services
from ops.status import collect
from schemas.ops import Status


@get(
    "/v1/admin/status",
    summary="Streams, consumers, persistence lag and dead letters",
    responses=problems(scope=ADMIN),
    operation_class=ProblemOperation,
)
async def admin_status(services: Services) -> Status:
    # Without the partitions' lag: counting it needs consumers, and the gateway's NATS
    # user may not create any (see ops.nats_auth). `conveyor status` shows it.
    return await collect(services.js, services.pool, services.settings, lag=False)
