"""Rate limits per client address and per owner, with separate budgets for writes
and reads, counted in Redis so every gateway process shares them.

The counting is the `limits` library's sliding-window counter (atomic Lua scripts in
Redis). Litestar's own rate-limit middleware reads, changes and writes its history back
without atomicity, so two processes lose each other's hits; and it trusts
X-Forwarded-For from anyone. Here the address is the connection's peer, rewritten by
the server only for proxies listed in CONVEYOR_FORWARDED_ALLOW_IPS.

The address budget is taken before authentication (so floods of bad tokens are
limited too), the owner budget after it, by OwnerRateLimitMiddleware. Responses carry the
tightest budget's RateLimit-* headers; a 429 also carries Retry-After.
"""

from __future__ import annotations

import ipaddress
import math
import time
from dataclasses import dataclass
from typing import Literal

import structlog
from limits import RateLimitItem, parse_many
from limits.aio.storage import RedisStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.errors import StorageError
from litestar.datastructures import MutableScopeHeaders
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from redis.asyncio import Redis

from gateway import pause
from gateway.errors import TooManyRequests
from gateway.pause import Pause
from schemas.errors import SettingsError
from schemas.settings import Settings

log = structlog.get_logger("gateway.ratelimit")

By = Literal["address", "owner"]
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_STATE_KEY = "rate_limits"


@dataclass(frozen=True, slots=True)
class Usage:
    limit: int
    remaining: int
    window: int
    reset: int
    """Seconds until a request is allowed again (0 while some remain)."""

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset),
            "RateLimit-Policy": f"{self.limit};w={self.window}",
        }


def _parse(setting: str, value: str) -> list[RateLimitItem]:
    if not value.strip():
        return []
    try:
        return list(parse_many(value))
    except ValueError as exc:
        raise SettingsError(f"CONVEYOR_{setting.upper()}: {exc}") from exc


class RateLimits:
    """The four budgets of `settings`, counted in `redis`."""

    def __init__(self, redis: Redis, settings: Settings) -> None:
        storage = RedisStorage(
            "async+redis://",
            implementation="redispy",
            wrap_exceptions=True,
            # The gateway's own pool (limits types its options narrower than it takes).
            connection_pool=redis.connection_pool,  # type: ignore[arg-type]
        )
        self._limiter = SlidingWindowCounterRateLimiter(storage)
        # Requests go uncounted while it is active: started by each failure of Redis.
        self._pause = Pause()
        self._budgets: dict[tuple[By, bool], list[RateLimitItem]] = {
            (by, write): _parse(
                f"rate_limit_{by}_{kind}", getattr(settings, f"rate_limit_{by}_{kind}")
            )
            for by in ("address", "owner")
            for write, kind in ((True, "writes"), (False, "reads"))
        }
        self.enabled = any(self._budgets.values())
        """False when all four budgets are empty (unlimited): the middlewares are left out."""

    async def take(self, scope: Scope, by: By, identity: str) -> None:
        """Count one request against `identity`'s budget; raises 429 when it is spent."""
        write = scope.get("method", "GET") in WRITE_METHODS
        kind = "writes" if write else "reads"
        taken: list[Usage] = scope.setdefault("state", {}).setdefault(_STATE_KEY, [])
        if self._pause.active:
            return
        for item in self._budgets[(by, write)]:
            try:
                allowed = await self._limiter.hit(item, by, kind, identity)
                # A second round trip: under concurrent requests `remaining` may be a
                # little stale; whether this one is allowed was decided atomically.
                stats = await self._limiter.get_window_stats(item, by, kind, identity)
            except StorageError as exc:
                # Redis holds only counters: without it, serve unlimited rather than not
                # at all, and stop asking for a while so requests do not each wait out
                # its timeouts.
                self._pause.start()
                log.warning(
                    "rate limits not counted",
                    error=str(exc.storage_error),
                    for_seconds=pause.SECONDS,
                )
                return
            usage = Usage(
                limit=item.amount,
                remaining=stats.remaining,
                window=item.get_expiry(),
                reset=max(0, math.ceil(stats.reset_time - time.time())),
            )
            taken.append(usage)
            if not allowed:
                headers = usage.headers()
                headers["Retry-After"] = str(max(1, usage.reset))
                raise TooManyRequests(
                    f"the {by} {kind} budget of {usage.limit} per {usage.window}s is spent",
                    headers=headers,
                )


def _tightest(scope: Scope) -> Usage | None:
    taken: list[Usage] = scope.get("state", {}).get(_STATE_KEY, [])
    return min(taken, key=lambda u: (u.remaining, -u.reset), default=None)


class AddressRateLimitMiddleware(ASGIMiddleware):
    """Takes the address budget; puts the tightest budget's headers on the answer."""

    scopes = (ScopeType.HTTP, ScopeType.WEBSOCKET)
    # Probes of an orchestrator are never throttled.
    exclude_path_pattern = ("^/health$", "^/ready$")

    def __init__(self, limits: RateLimits) -> None:
        self._limits = limits

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        client = scope.get("client")
        await self._limits.take(scope, "address", address_key(client[0] if client else ""))

        async def send_with_headers(message: Message) -> None:
            if message["type"] in ("http.response.start", "websocket.accept"):
                usage = _tightest(scope)
                if usage is not None:
                    headers = MutableScopeHeaders.from_message(message)
                    for name, value in usage.headers().items():
                        headers.setdefault(name, value)
            await send(message)

        await next_app(scope, receive, send_with_headers)


def address_key(host: str) -> str:
    """What an address budget is kept under: the IPv4 address, or the IPv6 /64 (one
    client usually holds a whole /64, and could otherwise walk through it)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host or "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


class OwnerRateLimitMiddleware(ASGIMiddleware):
    """Takes the owner budget, once authentication named the owner, and before the
    idempotency layer could answer from its store."""

    scopes = (ScopeType.HTTP, ScopeType.WEBSOCKET)

    def __init__(self, limits: RateLimits) -> None:
        self._limits = limits

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        owner = scope.get("user")
        if owner is not None:
            await self._limits.take(scope, "owner", str(owner))
        await next_app(scope, receive, send)
