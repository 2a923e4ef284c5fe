"""The Litestar application and the HTTP server that runs it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Generator
from functools import partial
from typing import Any

import uvicorn
from litestar import Litestar, Router
from litestar.di import Provide
from litestar.exceptions import HTTPException
from litestar.middleware.base import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.types import ControllerRouterHandler
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from actors.collector import tune_collector
from gateway.admin import admin_status
from gateway.artifacts import list_artifacts
from gateway.auth import JWTAuthMiddleware
from gateway.events import job_events
from gateway.feed import owner_events
from gateway.health import SharedChecks, check_dependencies, health, ready
from gateway.idempotency import IdempotencyMiddleware
from gateway.jobs import get_job, get_result, list_jobs
from gateway.page import Page, job_page
from gateway.problems import on_exception, on_http_exception
from gateway.ratelimit import AddressRateLimitMiddleware, OwnerRateLimitMiddleware
from gateway.requests import RequestIds
from gateway.scopes import ADMIN, READ, WRITE, requires, requires_by_method
from gateway.services import Services
from gateway.uploads import complete_upload, create_upload
from gateway.webhooks import create_webhook, delete_webhook, list_webhooks

VERSION = "0.1.0"


# What each token scope opens, in one place.
SCOPED_ROUTES: dict[str, list[ControllerRouterHandler]] = {
    WRITE: [create_upload, complete_upload],
    READ: [
        get_job,
        list_jobs,
        get_result,
        list_artifacts,
        job_events,
        owner_events,
        job_page,
    ],
    ADMIN: [admin_status],
}
# Paths both read (jobs:read) and changed (jobs:write): one router, scope by method.
MIXED_ROUTES: list[ControllerRouterHandler] = [create_webhook, list_webhooks, delete_webhook]
OPEN_ROUTES: list[ControllerRouterHandler] = [health, ready]


def create_app(services: Services) -> Litestar:
    def provide_services() -> Services:
        return services

    readiness = SharedChecks(partial(check_dependencies, services))

    def provide_readiness() -> SharedChecks:
        return readiness

    page = Page(services.presigner.origin)

    def provide_page() -> Page:
        return page

    # Without any budget (all four settings empty) the rate-limit layers have nothing
    # to count or to report: they are left out rather than run per request.
    limits = services.rate_limits
    # Run after a router's scope check: the idempotency store must never answer a token
    # without the write scope (it would hand out a stored upload URL).
    idempotency = IdempotencyMiddleware(
        services.idempotency, max_body=services.settings.max_body_bytes
    )

    return Litestar(
        route_handlers=[
            *(
                Router(
                    "/",
                    middleware=[requires(scope), *([idempotency] if scope == WRITE else [])],
                    route_handlers=handlers,
                )
                for scope, handlers in SCOPED_ROUTES.items()
            ),
            Router(
                "/",
                middleware=[requires_by_method(read=READ, write=WRITE), idempotency],
                route_handlers=MIXED_ROUTES,
            ),
            *OPEN_ROUTES,
        ],
        dependencies={
            "services": Provide(provide_services, sync_to_thread=False),
            "readiness": Provide(provide_readiness, sync_to_thread=False),
            "page": Provide(provide_page, sync_to_thread=False),
        },
        middleware=[
            *([AddressRateLimitMiddleware(limits)] if limits.enabled else []),
            DefineMiddleware(JWTAuthMiddleware, verifier=services.tokens, exclude=["^/schema"]),
            *([OwnerRateLimitMiddleware(limits)] if limits.enabled else []),
        ],
        request_max_body_size=services.settings.max_body_bytes,
        exception_handlers={HTTPException: on_http_exception, Exception: on_exception},
        openapi_config=OpenAPIConfig(
            title="Conveyor",
            version=VERSION,
            path="/schema",
            render_plugins=[JsonRenderPlugin()],
        ),
        logging_config=None,
        debug=False,
    )


class _OneWrite:
    """The transport of one request/response cycle, holding a write until the next one
    or the end of this loop iteration: uvicorn writes the head and the body of an
    answer separately, and on loopback each write is a system call costing as much as
    a good part of the request. A small answer now leaves in one."""

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes) -> None:
        if self._held is None:
            self._held = bytes(data)
            self._loop.call_soon(self._flush)
        else:
            held, self._held = self._held, None
            self._transport.write(held + data)

    def _flush(self) -> None:
        held, self._held = self._held, None
        if held is not None and not self._transport.is_closing():
            self._transport.write(held)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class _HttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, each answer written through `_OneWrite`."""

    def on_headers_complete(self) -> None:
        before = self.cycle
        super().on_headers_complete()
        if self.cycle is not None and self.cycle is not before:
            self.cycle.transport = _OneWrite(self.transport, self.loop)  # type: ignore[assignment]


class _Server(uvicorn.Server):
    # The entry point owns SIGINT/SIGTERM (one stop event for every component).
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


async def serve(services: Services, stop: asyncio.Event, *, host: str, port: int) -> None:
    """Serve until `stop`; then stop accepting and finish in-flight requests."""
    app = RequestIds(create_app(services))
    tune_collector()  # the app and its clients are built: none of them is garbage
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        lifespan="off",
        # X-Forwarded-For is believed only from the proxies named; uvicorn's default
        # trusts 127.0.0.1, so a local client could pick its own rate-limit address.
        proxy_headers=bool(services.settings.forwarded_allow_ips),
        forwarded_allow_ips=services.settings.forwarded_allow_ips or None,
        ws="websockets-sansio",
        # httptools (what "auto" picks) with answers written in one piece; the event
        # loop is the running one: uvloop, set up by the entry point.
        http=_HttpProtocol,
        timeout_graceful_shutdown=max(1, round(services.settings.shutdown_grace_seconds)),
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve())
    stopped = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        # Also when cancelled (a sibling component failed): never leave a server
        # answering with closed pools behind.
        server.should_exit = True
        stopped.cancel()
        await asyncio.shield(task)
