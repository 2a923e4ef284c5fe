"""What a token may do: route guards on the token's `scope` claim (403 when missing)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.types import Guard, Scope

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


def requires(scope: str) -> Guard:
    # Async: Litestar runs a plain-function guard in its thread pool, a thread hop per
    # request for a set lookup.
    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        if connection.scope.get("method") == "OPTIONS":
            return  # Litestar's own answer (Allow), unauthenticated like a CORS preflight
        if scope not in granted(connection.scope):
            raise PermissionDeniedException(detail=f"the token lacks the {scope!r} scope")

    return guard
