"""Waiting on a condition with a deadline: the only way tests wait for something."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

STEP = 0.05


async def eventually(
    condition: Callable[[], Awaitable[bool]], *, within: float = 60.0, what: str = "condition"
) -> None:
    """Poll `condition` until true; fail the test after `within` seconds."""
    await wait_for_value(lambda: _true_or_none(condition), within=within, what=what)


async def wait_for_value(
    probe: Callable[[], Awaitable[T | None]], *, within: float = 60.0, what: str = "value"
) -> T:
    """Poll `probe` until it returns something other than None, and return that."""
    deadline = time.monotonic() + within
    while (found := await probe()) is None:
        assert time.monotonic() < deadline, f"{what}: not within {within}s"
        await asyncio.sleep(STEP)
    return found


async def _true_or_none(condition: Callable[[], Awaitable[bool]]) -> bool | None:
    return True if await condition() else None
