"""Where a webhook may point: public addresses only, unless allowed."""

from __future__ import annotations

import pytest

from actors.destinations import (
    NoPublicAddress,
    PublicResolver,
    normalized,
    public,
    url_problem,
)


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
        ("64:ff9b::a00:1", False),  # NAT64 of 10.0.0.1
        ("2002:7f00:1::", False),  # 6to4 of 127.0.0.1
        ("::127.0.0.1", False),  # the old IPv4-compatible form
        ("::", False),
        ("93.184.215.14", True),
        ("64:ff9b::5db8:d70e", True),  # NAT64 of a public address
        ("2606:4700::6810:84e5", True),
    ],
)
def test_public(address: str, expected: bool) -> None:
    assert public(address) is expected


@pytest.mark.parametrize(
    "url",
    [
        "http://\uff11\uff12\uff17.\uff10.\uff10.\uff11:8080/x",  # full-width digits
        "http://127\u30020\u30020\u30021/x",  # ideographic full stops
        "http://2130706433/x",
        "http://0x7f.1/x",
        "http://127.1/x",
        "http://[::ffff:169.254.169.254]/latest",
        "http://LOCALHOST/x",
    ],
)
def test_other_spellings_of_inner_addresses_are_refused(url: str) -> None:
    # The host as the HTTP client reads it is what is checked.
    assert url_problem(url, allow_private=False) is not None


def test_normalized_is_what_the_client_connects_to() -> None:
    assert normalized("https://B\u00fccher.Example/x?q=1") == "https://xn--bcher-kva.example/x?q=1"


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
