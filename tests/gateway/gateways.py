"""Gateway processes of a test's own (`conveyor gateway`), beside the session service,
on the session's servers but with the settings the test needs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from conftest import Service, conveyor_process

from ops.stack import free_port
from schemas.settings import Settings


@asynccontextmanager
async def gateway_process(
    settings: Settings, name: str, *, probe: str = "/ready"
) -> AsyncIterator[Service]:
    """A running `conveyor gateway` with `settings` on a free port, once `probe` is 200."""
    settings = settings.replace(http_port=free_port(), shutdown_grace_seconds=2.0)
    async with conveyor_process(
        ["gateway", "--no-provision"], settings, name, stop_timeout=10, probe=probe
    ) as running:
        yield running
