"""Request ids and the access log: one line per request, bound to its id."""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import structlog
from litestar.types import ASGIApp, Message, Receive, Scope, Send

log = structlog.get_logger("gateway.access")

HEADER = "x-request-id"
_HEADER_BYTES = HEADER.encode()
_WELL_FORMED = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def request_id_from(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name == b"x-request-id":
            candidate = value.decode("latin-1")
            if _WELL_FORMED.match(candidate):
                return candidate
            break
    return uuid.uuid4().hex


class RequestIds:
    """Takes a well-formed `X-Request-ID` or makes one; echoes it; logs the request.

    Wraps the whole application, outside Litestar: unknown routes, 405s and errors
    raised by middleware are answered, logged and tagged like everything else.
    """

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self._app(scope, receive, send)
            return
        request_id = request_id_from(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status = 0
        echoed = (_HEADER_BYTES, request_id.encode())

        async def send_with_id(message: Message) -> None:
            nonlocal status
            kind = message["type"]
            if kind == "http.response.start" or kind == "websocket.accept":
                start: dict[str, Any] = message  # type: ignore[assignment]
                status = int(start.get("status", 101))
                # Replaces any X-Request-ID the app set (a plain list: no Headers object).
                start["headers"] = [
                    *(h for h in start.get("headers", ()) if h[0].lower() != _HEADER_BYTES),
                    echoed,
                ]
            elif message["type"] == "websocket.close" and not status:
                # Refused before accept: the close code (4403, 4404...) is the answer.
                status = int(message.get("code", 1000))
            await send(message)

        try:
            await self._app(scope, receive, send_with_id)
        finally:
            log.info(
                "request",
                method=scope.get("method", "WS"),
                path=scope["path"],
                status=status,
                ms=round((time.perf_counter() - started) * 1000, 2),
            )
            structlog.contextvars.unbind_contextvars("request_id")
