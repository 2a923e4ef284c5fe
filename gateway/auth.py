"""Bearer JWT authentication (HS256, audience-checked); `sub` is the owner.

WebSockets may pass the token as `?token=` because browsers can not set headers there.
"""

from __future__ import annotations

import time
from typing import Any

import jwt
from litestar.connection import ASGIConnection
from litestar.enums import ScopeType
from litestar.exceptions import NotAuthorizedException
from litestar.middleware.authentication import (
    AbstractAuthenticationMiddleware,
    AuthenticationResult,
)
from litestar.types import ASGIApp

from schemas.settings import Settings

ALGORITHMS = ["HS256"]


def issue_token(settings: Settings, subject: str, *, ttl_seconds: int = 24 * 3600) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": subject,
        "aud": settings.jwt_audience,
        "iat": now,
        "nbf": now,
        "exp": now + ttl_seconds,
    }
    if settings.jwt_issuer:
        claims["iss"] = settings.jwt_issuer
    return jwt.encode(claims, settings.jwt_secret, algorithm="HS256")


def verify_token(settings: Settings, token: str) -> dict[str, Any]:
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            settings.jwt_secret,
            algorithms=ALGORITHMS,
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer or None,
            options={"require": ["exp", "sub", "aud"]},
        )
    except jwt.PyJWTError as exc:
        raise NotAuthorizedException(detail=f"invalid token: {exc}") from exc
    if not isinstance(claims.get("sub"), str) or not claims["sub"]:
        raise NotAuthorizedException(detail="invalid token: empty subject")
    return claims


class JWTAuthMiddleware(AbstractAuthenticationMiddleware):
    def __init__(self, app: ASGIApp, settings: Settings, exclude: list[str]) -> None:
        super().__init__(app, exclude=exclude)
        self._settings = settings

    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        header = connection.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            token = (
                connection.query_params.get("token", "")
                if connection.scope["type"] == ScopeType.WEBSOCKET
                else ""
            )
        if not token:
            raise NotAuthorizedException(detail="missing bearer token")
        claims = verify_token(self._settings, token.strip())
        return AuthenticationResult(user=claims["sub"], auth=claims)
