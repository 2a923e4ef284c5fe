"""/ready's checks are shared: one round at a time, reused while fresh."""

from __future__ import annotations

import asyncio

import pytest

from gateway.health import SharedChecks


class Checks:
    """Dependency checks that count their rounds and finish when released.

    A round's task is made by the first caller, so it starts after every caller made
    before it has asked: `started` tells they all wait on the round.
    """

    def __init__(self) -> None:
        self.rounds = 0
        self.started = asyncio.Event()
        self.release = asyncio.Event()

    async def __call__(self) -> dict[str, str]:
        self.rounds += 1
        self.started.set()
        await self.release.wait()
        return {"postgres": "ok", "round": str(self.rounds)}


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_concurrent_probes_share_one_round() -> None:
    checks = Checks()
    # Never fresh: a caller after the round would start another, so one round means
    # all of them shared the round under way.
    shared = SharedChecks(checks, fresh=0.0, clock=Clock())
    waiting = [asyncio.create_task(shared()) for _ in range(50)]
    await checks.started.wait()
    checks.release.set()
    answers = await asyncio.gather(*waiting)
    assert checks.rounds == 1
    assert answers == [{"postgres": "ok", "round": "1"}] * 50


async def test_an_answer_is_reused_until_it_is_stale() -> None:
    checks, clock = Checks(), Clock()
    checks.release.set()
    shared = SharedChecks(checks, fresh=1.0, clock=clock)
    assert (await shared())["round"] == "1"
    clock.now += 0.9
    assert (await shared())["round"] == "1"
    clock.now += 0.1
    assert (await shared())["round"] == "2"
    assert checks.rounds == 2


async def test_a_caller_going_away_leaves_the_round_to_the_others() -> None:
    checks = Checks()
    shared = SharedChecks(checks, fresh=1.0, clock=Clock())
    gone = asyncio.create_task(shared())
    stays = asyncio.create_task(shared())
    await checks.started.wait()
    gone.cancel()
    with pytest.raises(asyncio.CancelledError):
        await gone
    checks.release.set()
    assert (await stays)["round"] == "1"
    assert checks.rounds == 1


async def test_a_failed_round_is_not_reused() -> None:
    rounds = 0

    async def flaky() -> dict[str, str]:
        nonlocal rounds
        rounds += 1
        if rounds == 1:
            raise ConnectionError("refused")
        return {"postgres": "ok"}

    shared = SharedChecks(flaky, fresh=60.0, clock=Clock())
    with pytest.raises(ConnectionError):
        await shared()
    assert await shared() == {"postgres": "ok"}
    assert rounds == 2
