"""Liveness and readiness."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from litestar import Request, Response, get
from litestar.openapi import ResponseSpec

from gateway.openapi import ProblemOperation, problems
from gateway.problems import problem_response
from gateway.services import Services
from schemas.api import Readiness

log = structlog.get_logger("gateway.health")

_TIMEOUT = 2.0
# How long one round of checks answers /ready: it takes no token and counts against
# no rate limit, so without this every request to it would reach Postgres, Redis and S3.
FRESH_SECONDS = 1.0


@get(
    "/health",
    opt={"exclude_from_auth": True},
    summary="The process is alive",
    responses=problems(scope=None),
    operation_class=ProblemOperation,
)
async def health() -> dict[str, str]:
    return {"status": "ok"}


async def _check(probe: Awaitable[Any]) -> str:
    try:
        await asyncio.wait_for(probe, timeout=_TIMEOUT)
    except Exception as exc:
        # Unauthenticated: the kind of failure only; addresses and messages go to the log.
        log.warning("readiness check failed", error=f"{type(exc).__name__}: {exc}")
        return type(exc).__name__
    return "ok"


async def _nats(services: Services) -> None:
    if not services.nc.is_connected:
        raise ConnectionError("not connected")
    await services.nc.flush(timeout=int(_TIMEOUT))


async def check_dependencies(services: Services) -> dict[str, str]:
    """Each dependency's answer: "ok" or the kind of its failure."""
    names = ("nats", "postgres", "redis", "s3")
    results = await asyncio.gather(
        _check(_nats(services)),
        _check(services.pool.fetchval("SELECT 1")),
        _check(services.redis.ping()),
        _check(services.s3.head_bucket(Bucket=services.settings.s3_bucket)),
    )
    return dict(zip(names, results, strict=True))


class SharedChecks:
    """Runs `checks` once at a time, its answer reused until `fresh` seconds after it
    started: concurrent and repeated probes share one round."""

    def __init__(
        self,
        checks: Callable[[], Awaitable[dict[str, str]]],
        *,
        fresh: float = FRESH_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._checks = checks
        self._fresh = fresh
        self._clock = clock
        self._round: asyncio.Task[dict[str, str]] | None = None
        self._started = -math.inf

    async def __call__(self) -> dict[str, str]:
        now = self._clock()
        current = self._round
        # A finished round is reused while fresh, never if it failed.
        if current is None or (
            current.done() and (_failed(current) or now - self._started >= self._fresh)
        ):
            self._started = now
            current = self._round = asyncio.ensure_future(self._checks())
        # Shielded: a caller that goes away does not cancel the round the others wait on.
        return await asyncio.shield(current)


def _failed(task: asyncio.Task[Any]) -> bool:
    return task.cancelled() or task.exception() is not None


@get(
    "/ready",
    opt={"exclude_from_auth": True},
    summary="NATS, Postgres, Redis and S3 all answer",
    # The handler returns a bare Response (a problem when not ready): say what 200 holds.
    responses={
        200: ResponseSpec(Readiness, description="Every check answered", generate_examples=False),
        **problems(503, scope=None, notes={503: "Not ready: `errors` names each failing check."}),
    },
    operation_class=ProblemOperation,
)
async def ready(request: Request[Any, Any, Any], readiness: SharedChecks) -> Response[Any]:
    checks = await readiness()
    failing = [name for name, result in checks.items() if result != "ok"]
    if failing:
        return problem_response(
            request,
            503,
            f"not ready: {', '.join(failing)}",
            headers={"Retry-After": "5"},
            errors=[{"check": n, "error": checks[n]} for n in failing],
        )
    return Response(Readiness(ready=True, checks=checks))
