"""Where a webhook may point: an http(s) URL whose host is a public address.

A webhook is a request the service makes on a stranger's behalf, from inside its
own network. Unless private addresses are allowed, a URL naming a loopback,
private, link-local or otherwise non-public address is refused when it is
registered, and a host name is resolved at each delivery with non-public answers
dropped, so a name re-pointed at an inner address after registration reaches
nothing (the connection goes to the very addresses checked).
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver


def public(address: str) -> bool:
    """True for an address on the public internet (not loopback, private, link-local,
    shared, reserved, multicast or unspecified)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # a zone id (fe80::1%eth0) aside
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def _ip(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None


def url_problem(url: str, *, allow_private: bool) -> str | None:
    """Why `url` can not be a webhook, or None when it can."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError as exc:
        return f"not a URL: {exc}"
    if parts.scheme not in ("http", "https"):
        return "the scheme must be http or https"
    if not parts.hostname:
        return "the URL names no host"
    if parts.username is not None or parts.password is not None:
        return "credentials in the URL are not accepted: sign with the webhook's secret"
    if parts.fragment:
        return "a fragment is never sent: leave it out"
    if allow_private:
        return None
    host = parts.hostname
    literal = _ip(host)
    if literal is not None and not public(literal):
        return f"{host} is not a public address"
    if literal is None and (host == "localhost" or host.endswith((".localhost", ".local"))):
        return f"{host} is not a public host"
    return None


class NoPublicAddress(OSError):
    def __init__(self, host: str) -> None:
        super().__init__(f"{host} resolves to no public address")
        self.host = host


class PublicResolver(AbstractResolver):
    """Resolves as aiohttp would, keeping only public addresses."""

    def __init__(self) -> None:
        self._inner = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = [r for r in await self._inner.resolve(host, port, family) if public(r["host"])]
        if not found:
            raise NoPublicAddress(host)
        return found

    async def close(self) -> None:
        await self._inner.close()
