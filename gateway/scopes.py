"""What a token may do: checks of the token's `scope` claim per router (403 when missing)."""

from __future__ import annotations

from dataclasses import dataclass

from litestar.exceptions import PermissionDeniedException
from litestar.middleware.base import DefineMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send

READ = "jobs:read"
"""Read jobs, results and artifacts; subscribe to a job's events."""
WRITE = "jobs:write"
"""Create uploads and complete them."""
ADMIN = "admin"
"""Operations routes under /v1/admin."""

DEFAULT_SCOPES = frozenset({READ, WRITE})
ALL_SCOPES = frozenset({READ, WRITE, ADMIN})


@dataclass(frozen=True, slots=True)
class Grant:
    """What a verified token grants (a connection's `auth`)."""

    scopes: frozenset[str]
    expires_at: float
    """The token's `exp` (Unix time): a WebSocket is closed then."""


def granted(scope: Scope) -> frozenset[str]:
    grant = scope.get("auth")
    return grant.scopes if isinstance(grant, Grant) else frozenset()


class RequireScope:
    """Refuses a route to a token without the scope it needs (403); on a `Router`'s
    middleware. `read` is needed for GET and HEAD, `write` for any other method: the
    same scope for a router of one kind, two for one whose paths both read and change
    (GET and POST /v1/webhooks), which Litestar will not split across two routers.

    Middleware rather than a Litestar guard: Litestar hands every guard call a copy of
    the route handler, a tenth of the gateway's CPU per request for a set lookup.
    """

    __slots__ = ("_app", "_read", "_write")

    def __init__(self, app: ASGIApp, read: str, write: str) -> None:
        self._app = app
        self._read = read
        self._write = write

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope.get("method")
        # OPTIONS gets Litestar's own answer (Allow), unauthenticated like a CORS
        # preflight.
        if method != "OPTIONS":
            wanted = self._read if method in ("GET", "HEAD") else self._write
            if wanted not in granted(scope):
                raise PermissionDeniedException(detail=f"the token lacks the {wanted!r} scope")
        await self._app(scope, receive, send)


def requires(scope: str) -> DefineMiddleware:
    return requires_by_method(read=scope, write=scope)


def requires_by_method(*, read: str, write: str) -> DefineMiddleware:
    return DefineMiddleware(RequireScope, read=read, write=write)
