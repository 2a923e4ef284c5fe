"""Every error leaves as `application/problem+json` (RFC 9457), with the request id."""

from __future__ import annotations

import traceback
from http import HTTPStatus
from typing import Any

import asyncpg
import msgspec
import structlog
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException

from actors.errors import TransientError
from gateway.errors import NATS_UNREACHABLE, ProblemError
from schemas.api import Problem

log = structlog.get_logger("gateway")

MEDIA_TYPE = "application/problem+json"
_encoder = msgspec.json.Encoder()


def problem_response(
    request: Request[Any, Any, Any],
    status: int,
    detail: str,
    *,
    title: str | None = None,
    headers: dict[str, str] | None = None,
    errors: list[dict[str, Any]] | None = None,
) -> Response[bytes]:
    body = Problem(
        status=status,
        title=title or HTTPStatus(status).phrase,
        detail=detail,
        instance=request.url.path,
        # Set by `RequestIds`, which wraps the app and also echoes it as X-Request-ID.
        request_id=request.scope["state"]["request_id"],
        errors=errors,
    )
    return Response(
        content=_encoder.encode(body), status_code=status, media_type=MEDIA_TYPE, headers=headers
    )


def on_http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    headers = dict(exc.headers or {})
    if isinstance(exc, ValidationException):
        # A body or parameter that parsed but does not fit: 422, with msgspec's path.
        extra = exc.extra if isinstance(exc.extra, list) else None
        return problem_response(
            request, 422, exc.detail or "invalid request", headers=headers, errors=extra
        )
    title = exc.title if isinstance(exc, ProblemError) else None
    if exc.status_code == 401:
        headers.setdefault("WWW-Authenticate", 'Bearer realm="conveyor"')
    return problem_response(
        request,
        exc.status_code,
        exc.detail or HTTPStatus(exc.status_code).phrase,
        title=title,
        headers=headers,
    )


_UNAVAILABLE = (
    TransientError,
    *NATS_UNREACHABLE,
    # Postgres down, restarting or out of connections.
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.InterfaceError,
)


# Where Litestar decodes request bodies: a RecursionError raised in one of these is the
# client's nesting (`[[[[...]]]]` within the body size limit), not a fault of ours.
_BODY_DECODERS = frozenset({"decode_json", "decode_msgpack"})
_DECODERS_MODULE = "litestar.serialization.msgspec_hooks"


def _nested_too_deeply(exc: Exception) -> bool:
    return isinstance(exc, RecursionError) and any(
        frame.f_code.co_name in _BODY_DECODERS
        and frame.f_globals.get("__name__") == _DECODERS_MODULE
        for frame, _ in traceback.walk_tb(exc.__traceback__)
    )


def on_exception(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    if _nested_too_deeply(exc):
        return problem_response(request, 400, "the body is nested too deeply")
    if isinstance(exc, _UNAVAILABLE):
        log.warning("dependency unavailable", error=f"{type(exc).__name__}: {exc}")
        return problem_response(
            request,
            503,
            "a backing service is unavailable; retry shortly",
            headers={"Retry-After": "2"},
        )
    # Never leak internals: the log has the trace, the client the request id.
    log.exception("unhandled error", path=request.url.path)
    return problem_response(request, 500, "internal error; quote the request id when reporting")
