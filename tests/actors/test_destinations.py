"""Where a webhook may point: public addresses only, unless allowed."""

from __future__ import annotations

import pytest

from actors.destinations import NoPublicAddress, PublicResolver, public, url_problem


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("127.0.0.1", False),
        ("10.0.0.1", False),
        ("172.16.5.4", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),  # the cloud metadata service
        ("100.64.0.1", False),
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("::1", False),
        ("fe80::1%eth0", False),
        ("fd00::1", False),
        ("::ffff:127.0.0.1", False),
        ("93.184.215.14", True),
        ("2606:4700::6810:84e5", True),
    ],
)
def test_public(address: str, expected: bool) -> None:
    assert public(address) is expected


def test_url_problem() -> None:
    assert url_problem("https://example.com/x", allow_private=False) is None
    assert url_problem("http://[::1]:8000/x", allow_private=False) is not None
    assert url_problem("http://[::1]:8000/x", allow_private=True) is None
    assert url_problem("http://app.localhost/x", allow_private=False) is not None
    # Still a URL of the right kind, however private.
    assert url_problem("gopher://127.0.0.1/x", allow_private=True) is not None


async def test_resolver_keeps_public_addresses_only() -> None:
    resolver = PublicResolver()
    try:
        with pytest.raises(NoPublicAddress):
            await resolver.resolve("localhost", 80)
    finally:
        await resolver.close()
