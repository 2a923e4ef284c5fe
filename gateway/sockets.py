"""Open WebSockets per owner in this process, each owner held to a cap.

An open socket holds a NATS subscription and a task re-reading the stream until
its job ends or its token expires: without a cap, one owner's token could open
them until the process runs out of memory or file descriptors. The count is the
process's own: behind a load balancer an owner may hold the cap on each gateway.
"""

from __future__ import annotations

from collections import Counter


class OpenSockets:
    """How many sockets each owner holds open; `claim` one before serving it, and
    `release` it when it closes."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open: Counter[str] = Counter()

    def claim(self, owner: str) -> bool:
        """Counts one more socket for `owner`; False (and nothing counted) at the cap."""
        if self._open[owner] >= self.limit:
            return False
        self._open[owner] += 1
        return True

    def release(self, owner: str) -> None:
        assert self._open[owner] > 0, f"released a socket {owner!r} never claimed"
        self._open[owner] -= 1
        if self._open[owner] <= 0:
            del self._open[owner]  # owners come and go: keep only those with sockets

    def count(self, owner: str) -> int:
        return self._open[owner]

    def __len__(self) -> int:
        """Owners with a socket open."""
        return len(self._open)
