"""A pause after a failure of Redis, during which it is not asked at all.

Redis only speeds the gateway up (cached views, rate-limit counters): while it is
away, each request would otherwise wait out its timeouts before going on without it.
"""

from __future__ import annotations

import time

# Long enough that a dead Redis costs a timeout only now and then, short enough that
# one which is back is soon used again.
SECONDS = 5.0


class Pause:
    """`active` for `SECONDS` after each `start()` (on the monotonic clock)."""

    __slots__ = ("_until",)

    def __init__(self) -> None:
        self._until = 0.0

    @property
    def active(self) -> bool:
        return time.monotonic() < self._until

    def start(self) -> None:
        self._until = time.monotonic() + SECONDS
