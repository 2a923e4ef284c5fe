"""What the WebSocket routes share: close codes, the per-owner cap, token expiry.

An open socket holds a NATS subscription and a task re-reading the stream until
its job ends or its token expires: without a cap, one owner's token could open
them until the process runs out of memory or file descriptors. The count is the
process's own: behind a load balancer an owner may hold the cap on each gateway.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from typing import Any

from litestar import WebSocket
from litestar.exceptions import WebSocketDisconnect

from gateway.scopes import Grant

# Application close codes (4000-4999) mirror HTTP: 4400 a bad query, 4401 the token
# expired while the socket was open, 4404 no such job, 4408 a client too slow to
# take its frames, 4416 a range of events that can not be served, 4429 the owner
# has too many sockets open. 1012 (the server restarts): a gap may follow, resume;
# 1013 (try again later): NATS did not answer as the socket was set up.
CLOSE_BAD_REQUEST = 4400
CLOSE_EXPIRED = 4401
CLOSE_NOT_FOUND = 4404
CLOSE_TOO_SLOW = 4408
CLOSE_RANGE = 4416
CLOSE_TOO_MANY = 4429
CLOSE_RESTART = 1012
CLOSE_TRY_AGAIN = 1013


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


async def claim_or_close(
    socket: WebSocket[str, Any, Any], sockets: OpenSockets, owner: str
) -> bool:
    """Counts the socket against the owner's cap (release it when it ends); at the cap,
    closes it with 4429 and returns False."""
    if sockets.claim(owner):
        return True
    await socket.close(
        code=CLOSE_TOO_MANY, reason=f"{sockets.limit} sockets open for this owner already"
    )
    return False


def token_expiry(socket: WebSocket[str, Any, Any]) -> float:
    """When the socket's token expires (epoch seconds): the socket closes then."""
    grant = socket.scope.get("auth")
    return grant.expires_at if isinstance(grant, Grant) else time.time()


async def until_disconnect(socket: WebSocket[str, Any, Any]) -> None:
    """Returns when the client goes away; what it sends is read and dropped."""
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            await socket.receive_data(mode="text")
