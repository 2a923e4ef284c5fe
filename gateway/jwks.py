"""An issuer's signing keys from its JWKS URL: cached, fetched again on an unknown `kid`.

Keys rotate without a restart: a token signed with a new key names a `kid` the cache
lacks, which fetches the set again. Such fetches are spaced by `min_refresh` seconds,
so a stream of tokens with made-up kids costs the issuer one request per interval.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import structlog
from jwt import PyJWK, PyJWKSet
from jwt.exceptions import PyJWKError, PyJWKSetError

from gateway.errors import Unavailable

log = structlog.get_logger("gateway.jwks")


class KeySet:
    def __init__(
        self,
        url: str,
        http: httpx.AsyncClient,
        *,
        algorithms: frozenset[str],
        ttl: float,
        min_refresh: float,
    ) -> None:
        self._url = url
        self._algorithms = algorithms
        self._http = http
        self._ttl = ttl
        self._min_refresh = min_refresh
        self._keys: dict[str, PyJWK] = {}
        self._fetched_at = -float("inf")
        self._failed_at = -float("inf")
        self._lock = asyncio.Lock()

    async def key(self, kid: str) -> PyJWK | None:
        """The key named `kid`, or None when the issuer does not have it (any more)."""
        stale = time.monotonic() - self._fetched_at > self._ttl
        if kid in self._keys and not stale:
            return self._keys[kid]
        if not self._keys and time.monotonic() - self._failed_at < self._min_refresh:
            # The issuer was just unreachable: answer at once instead of queueing
            # every request behind another fetch that would time out too.
            raise Unavailable("the token issuer's keys can not be fetched")
        async with self._lock:
            # Another request may have fetched while this one waited.
            since = time.monotonic() - self._fetched_at
            if since > self._ttl or (kid not in self._keys and since >= self._min_refresh):
                await self._fetch()
        return self._keys.get(kid)

    async def _fetch(self) -> None:
        try:
            response = await self._http.get(self._url)
            response.raise_for_status()
            keys = PyJWKSet.from_json(response.text).keys
        except (httpx.HTTPError, PyJWKError, PyJWKSetError, ValueError) as exc:
            log.warning("jwks fetch failed", url=self._url, error=f"{type(exc).__name__}: {exc}")
            self._failed_at = time.monotonic()
            if not self._keys:
                raise Unavailable("the token issuer's keys can not be fetched") from exc
            # Keep serving the keys we had; try again after `min_refresh`.
            self._fetched_at = time.monotonic() - self._ttl + self._min_refresh
            return
        # A key without a `kid` can not be chosen by a token, so it is never used; nor is
        # one for another algorithm (a symmetric `oct` key published here would let
        # anyone who reads the set sign tokens).
        self._keys = {
            k.key_id: k
            for k in keys
            if k.key_id
            and k.public_key_use in (None, "sig")
            and k.algorithm_name in self._algorithms
        }
        self._fetched_at = time.monotonic()
        log.info("jwks fetched", url=self._url, kids=sorted(self._keys))
