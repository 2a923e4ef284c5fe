"""Gateway processes of a test's own (`conveyor gateway`), beside the session service,
on the session's servers but with the settings the test needs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from conftest import conveyor_process

from ops.stack import free_port
from schemas.settings import Settings


@asynccontextmanager
async def gateway_process(settings: Settings, name: str) -> AsyncIterator[str]:
    """A running `conveyor gateway` with `settings` on a free port; yields its URL."""
    settings = settings.replace(http_port=free_port(), shutdown_grace_seconds=2.0)
    async with conveyor_process(
        ["gateway", "--no-provision"], settings, name, stop_timeout=10
    ) as running:
        yield running.url
