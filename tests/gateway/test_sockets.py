"""The count of open WebSockets per owner."""

from __future__ import annotations

from gateway.sockets import OpenSockets


def test_claims_stop_at_the_limit_per_owner() -> None:
    sockets = OpenSockets(2)
    assert [sockets.claim("a") for _ in range(3)] == [True, True, False]
    assert sockets.count("a") == 2
    assert sockets.claim("b")
    sockets.release("a")
    assert sockets.count("a") == 1
    assert sockets.claim("a")
    assert not sockets.claim("a")


def test_released_owners_are_forgotten() -> None:
    sockets = OpenSockets(1)
    for n in range(1000):
        assert sockets.claim(f"owner-{n}")
        sockets.release(f"owner-{n}")
    assert len(sockets) == 0
