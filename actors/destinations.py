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

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries to (mapped, 6to4, NAT64, the old
    IPv4-compatible form), which is where a connection to it ends up."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    packed = ip.packed
    if any(ip in net for net in NAT64) or (packed[:12] == bytes(12) and int(ip) > 1):
        return ipaddress.IPv4Address(packed[-4:])
    return None


def public(address: str) -> bool:
    """True for an address on the public internet (not loopback, private, link-local,
    shared, reserved, multicast or unspecified, nor an IPv6 form of one of those)."""
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(
        address.split("%", 1)[0]  # a zone id (fe80::1%eth0) aside
    )
    if isinstance(ip, ipaddress.IPv6Address):
        ip = _embedded_ipv4(ip) or ip
    return ip.is_global and not ip.is_multicast


def _ip(host: str) -> str | None:
    """`host` as an IP address, if it is one in any form a resolver takes as one
    (`127.1`, `2130706433` and `0x7f.1` included)."""
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        pass
    try:
        return socket.inet_ntoa(socket.inet_aton(host))
    except OSError:
        return None


def normalized(url: str) -> str:
    """`url` as the HTTP client will read it (IDNA, full-width digits and dots folded):
    what is checked must be what is connected to."""
    return str(URL(url))


def url_problem(url: str, *, allow_private: bool) -> str | None:
    """Why `url` can not be a webhook, or None when it can."""
    try:
        parts = URL(url)
        host = parts.host
    except (ValueError, UnicodeError) as exc:
        return f"not a URL: {exc}"
    if parts.scheme not in ("http", "https"):
        return "the scheme must be http or https"
    if not host:
        return "the URL names no host"
    if parts.user is not None or parts.password is not None:
        return "credentials in the URL are not accepted: sign with the webhook's secret"
    if parts.fragment:
        return "a fragment is never sent: leave it out"
    if allow_private:
        return None
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
