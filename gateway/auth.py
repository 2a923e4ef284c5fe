"""Bearer JWT authentication; `sub` is the owner, `scope` what the token may do.

Two modes, never mixed, so one algorithm's key can not be presented as another's:
- HS256 with `CONVEYOR_JWT_SECRET` (the development default; `conveyor token` mints);
- RS256/ES256 with the issuer's keys from `CONVEYOR_JWT_JWKS_URL` (see `gateway.jwks`).
`alg: none` is refused in both. `exp`, `sub` and `aud` are required; `nbf` and `iss`
are checked when present or configured.

WebSockets, and routes whose `opt` sets `QUERY_TOKEN` (the job's web page), may pass
the token as `?token=`, because browsers can not set headers there.
"""

from __future__ import annotations

import time
from typing import Any

import jwt
from cachetools import TLRUCache
from jwt import PyJWK
from litestar.connection import ASGIConnection
from litestar.enums import ScopeType
from litestar.exceptions import NotAuthorizedException
from litestar.middleware.authentication import (
    AbstractAuthenticationMiddleware,
    AuthenticationResult,
)
from litestar.types import ASGIApp

from gateway.jwks import KeySet
from gateway.scopes import DEFAULT_SCOPES, Grant
from schemas.settings import Settings

# A route option: this route takes `?token=` as well as the header.
QUERY_TOKEN = "query_token"

SYMMETRIC = "HS256"
ASYMMETRIC = frozenset({"RS256", "ES256"})
# Clocks of the issuer and the gateway may disagree this much.
LEEWAY_SECONDS = 30
# HS256 tokens verified once are remembered this long (never past their `exp`): a
# client sends the same token with every request, and checking it is a good part of
# a request's CPU. Bounded, so a flood of distinct valid tokens can not grow it.
VERIFIED_CACHE_SECONDS = 60.0
VERIFIED_CACHE_SIZE = 4096


def issue_token(
    settings: Settings,
    subject: str,
    *,
    scopes: frozenset[str] | set[str] = DEFAULT_SCOPES,
    ttl_seconds: int = 24 * 3600,
) -> str:
    """An HS256 token for `subject` (development and tests; production uses an issuer)."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": subject,
        "aud": settings.jwt_audience,
        "scope": " ".join(sorted(scopes)),
        "iat": now,
        "nbf": now,
        "exp": now + ttl_seconds,
    }
    if settings.jwt_issuer:
        claims["iss"] = settings.jwt_issuer
    return jwt.encode(claims, settings.jwt_secret, algorithm=SYMMETRIC)


class TokenVerifier:
    """Checks a bearer token; answers (owner, scopes) or raises 401."""

    def __init__(self, settings: Settings, keys: KeySet | None = None) -> None:
        self._settings = settings
        self._keys = keys
        self._required = ["exp", "sub", "aud"] + (["iss"] if settings.jwt_issuer else [])
        # token -> (owner, grant): HS256 only. With a JWKS a token must stop working as
        # soon as its key leaves the set, so each one is checked.
        self._verified: TLRUCache[str, tuple[str, Grant]] = TLRUCache(
            maxsize=VERIFIED_CACHE_SIZE, ttu=_usable_until, timer=time.time
        )

    async def verify(self, token: str) -> tuple[str, Grant]:
        if self._keys is not None:
            return await self._verify(token)
        hit = self._verified.get(token)
        if hit is not None:
            return hit
        self._verified[token] = verified = await self._verify(token)
        return verified

    async def _verify(self, token: str) -> tuple[str, Grant]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise _invalid(f"malformed: {exc}") from exc
        alg = header.get("alg")
        key: str | PyJWK
        if self._keys is None:
            if alg != SYMMETRIC:
                raise _invalid(f"algorithm {alg!r} is not accepted")
            key = self._settings.jwt_secret
        else:
            if alg not in ASYMMETRIC:
                raise _invalid(f"algorithm {alg!r} is not accepted")
            kid = header.get("kid")
            found = await self._keys.key(kid) if isinstance(kid, str) and kid else None
            if found is None:
                raise _invalid(f"unknown key id {kid!r}")
            key = found
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=self._settings.jwt_audience,
                issuer=self._settings.jwt_issuer or None,
                leeway=LEEWAY_SECONDS,
                options={"require": self._required},
            )
        except jwt.PyJWTError as exc:
            raise _invalid(str(exc)) from exc
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject.strip() or len(subject) > 256:
            raise _invalid("the subject must be a non-empty string of at most 256 characters")
        # Lone surrogates ("\ud800", no UTF-8 for keys and SQL) are not printable either.
        if not subject.isprintable():
            raise _invalid("the subject must be printable text")
        return subject, Grant(scopes=_scopes(claims.get("scope")), expires_at=float(claims["exp"]))


def _usable_until(_token: str, verified: tuple[str, Grant], now: float) -> float:
    # Exactly as long as the full check would still pass: `exp` plus the leeway (`nbf`
    # and the signature, audience and issuer can not change meanwhile).
    return min(verified[1].expires_at + LEEWAY_SECONDS, now + VERIFIED_CACHE_SECONDS)


def _scopes(raw: object) -> frozenset[str]:
    # RFC 8693: space-separated; some issuers send a list instead.
    if isinstance(raw, str):
        return frozenset(raw.split())
    if isinstance(raw, list):
        return frozenset(s for s in raw if isinstance(s, str))
    return frozenset()


def _invalid(reason: str) -> NotAuthorizedException:
    return NotAuthorizedException(detail=f"invalid token: {reason}")


class JWTAuthMiddleware(AbstractAuthenticationMiddleware):
    def __init__(self, app: ASGIApp, verifier: TokenVerifier, exclude: list[str]) -> None:
        super().__init__(app, exclude=exclude)
        self._verifier = verifier

    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        # ASGI header names are lower-case: no need to build the whole Headers object.
        raw = next((v for k, v in connection.scope["headers"] if k == b"authorization"), b"")
        header = raw.decode("latin-1")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            token = (
                connection.query_params.get("token", "")
                if connection.scope["type"] == ScopeType.WEBSOCKET
                or connection.route_handler.opt.get(QUERY_TOKEN)
                else ""
            )
        if not token:
            raise NotAuthorizedException(detail="missing bearer token")
        owner, grant = await self._verifier.verify(token.strip())
        return AuthenticationResult(user=owner, auth=grant)
