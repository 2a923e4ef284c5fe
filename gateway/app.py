"""The Litestar application and the HTTP server that runs it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Generator

import uvicorn
from litestar import Litestar
from litestar.di import Provide
from litestar.exceptions import HTTPException
from litestar.middleware.base import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin

from gateway.artifacts import list_artifacts
from gateway.auth import JWTAuthMiddleware
from gateway.events import job_events
from gateway.health import health, ready
from gateway.idempotency import IdempotencyMiddleware
from gateway.jobs import get_job, get_result, list_jobs
from gateway.problems import on_exception, on_http_exception
from gateway.requests import RequestIdMiddleware
from gateway.services import Services
from gateway.uploads import complete_upload, create_upload

VERSION = "0.1.0"


def create_app(services: Services) -> Litestar:
    def provide_services() -> Services:
        return services

    return Litestar(
        route_handlers=[
            create_upload,
            complete_upload,
            get_job,
            list_jobs,
            get_result,
            list_artifacts,
            job_events,
            health,
            ready,
        ],
        dependencies={"services": Provide(provide_services, sync_to_thread=False)},
        middleware=[
            RequestIdMiddleware(),
            DefineMiddleware(JWTAuthMiddleware, settings=services.settings, exclude=["^/schema"]),
            IdempotencyMiddleware(services.idempotency),
        ],
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


class _Server(uvicorn.Server):
    # The entry point owns SIGINT/SIGTERM (one stop event for every component).
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


async def serve(services: Services, stop: asyncio.Event, *, host: str, port: int) -> None:
    """Serve until `stop`; then stop accepting and finish in-flight requests."""
    config = uvicorn.Config(
        create_app(services),
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        lifespan="off",
        ws="websockets-sansio",
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
