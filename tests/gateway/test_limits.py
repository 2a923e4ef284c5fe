"""Rate limits held in Redis: two gateway processes share one budget.

Each test talks from a loopback address of its own (127.x.y.z), so address budgets
do not bleed between tests, and uses owners of its own.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from conftest import Service
from gateways import gateway_process
from test_errors import assert_problem

from gateway.auth import issue_token
from ops.stack import free_port

OWNER_WRITES = 4
ADDRESS_READS = 5
WINDOW = 3600


@pytest.fixture(scope="module")
async def gateways(service: Service) -> AsyncIterator[tuple[str, str]]:
    settings = service.settings.replace(
        rate_limit_owner_writes=f"{OWNER_WRITES}/hour",
        rate_limit_owner_reads="1000/hour",
        rate_limit_address_writes="1000/hour",
        rate_limit_address_reads=f"{ADDRESS_READS}/hour",
    )
    # The second believes X-Forwarded-For from 127.0.0.1 (a proxy on this host).
    trusting = settings.replace(forwarded_allow_ips="127.0.0.1")
    async with (
        gateway_process(settings, "gateway-limits-1") as one,
        gateway_process(trusting, "gateway-limits-2") as two,
    ):
        yield one.url, two.url


def new_address() -> str:
    return f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(2, 254)}"


Pair = tuple[httpx.AsyncClient, httpx.AsyncClient]


@pytest.fixture
async def clients(gateways: tuple[str, str]) -> AsyncIterator[Callable[[str], Pair]]:
    """`clients(address)`: one client per gateway, each talking from `address`."""
    opened: list[httpx.AsyncClient] = []

    def make(address: str) -> Pair:
        one, two = (
            httpx.AsyncClient(
                base_url=url,
                timeout=10,
                transport=httpx.AsyncHTTPTransport(local_address=address),
            )
            for url in gateways
        )
        opened.extend((one, two))
        return one, two

    yield make
    for client in opened:
        await client.aclose()


def bearer(service: Service, owner: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(service.settings, owner)}"}


UPLOAD = {"filename": "f.csv", "content_type": "text/csv", "size": 1}


def assert_limited(r: httpx.Response, limit: int) -> None:
    body = assert_problem(r, 429)
    assert "budget" in str(body["detail"])
    assert int(r.headers["retry-after"]) >= 1
    assert r.headers["ratelimit-limit"] == str(limit)
    assert r.headers["ratelimit-remaining"] == "0"
    assert r.headers["ratelimit-policy"] == f"{limit};w={WINDOW}"


async def test_owner_write_budget_is_shared_by_both_gateways(
    service: Service, clients: Callable[[str], Pair]
) -> None:
    owner = f"limited-{uuid.uuid4().hex[:8]}"
    one, two = clients(new_address())
    headers = bearer(service, owner)
    remaining = []
    for i in range(OWNER_WRITES):
        r = await (one if i % 2 == 0 else two).post("/v1/uploads", json=UPLOAD, headers=headers)
        assert r.status_code == 201, r.text
        remaining.append(int(r.headers["ratelimit-remaining"]))
    assert remaining == list(range(OWNER_WRITES - 1, -1, -1))
    # Spent on both processes: each counted the other's writes.
    for gateway in (one, two):
        assert_limited(
            await gateway.post("/v1/uploads", json=UPLOAD, headers=headers), OWNER_WRITES
        )
    # Reads are a budget of their own; another owner has a write budget of its own.
    assert (await one.get("/v1/jobs", headers=headers)).status_code == 200
    other = bearer(service, f"other-{uuid.uuid4().hex[:8]}")
    assert (await two.post("/v1/uploads", json=UPLOAD, headers=other)).status_code == 201


async def test_address_read_budget_is_shared_and_counts_before_authentication(
    service: Service, clients: Callable[[str], Pair]
) -> None:
    one, two = clients(new_address())
    # Anonymous requests count: a flood of bad tokens spends the address's budget.
    for i in range(ADDRESS_READS - 1):
        r = await (one if i % 2 == 0 else two).get("/v1/jobs")
        assert r.status_code == 401
    # A different owner each time: only the address can be what is counted.
    fresh = bearer(service, f"reader-{uuid.uuid4().hex[:8]}")
    assert (await two.get("/v1/jobs", headers=fresh)).status_code == 200
    for gateway in (one, two):
        r = await gateway.get("/v1/jobs", headers=bearer(service, f"r-{uuid.uuid4().hex[:8]}"))
        assert_limited(r, ADDRESS_READS)
        assert_limited(await gateway.get("/v1/jobs"), ADDRESS_READS)
    # Writes from the same address, and reads from another address, still pass.
    assert (await one.post("/v1/uploads", json=UPLOAD, headers=fresh)).status_code == 201
    elsewhere, _ = clients(new_address())
    assert (await elsewhere.get("/v1/jobs", headers=fresh)).status_code == 200


async def test_forwarded_for_is_believed_only_from_a_listed_proxy(
    clients: Callable[[str], Pair],
) -> None:
    # From 127.0.0.1 itself, which uvicorn would trust by default. Only this test here
    # talks from it, and only with X-Forwarded-For, so its budget is this test's own.
    plain, trusting = clients("127.0.0.1")
    spoofed = [{"X-Forwarded-For": f"10.{random.randint(0, 255)}.0.{i + 1}"} for i in range(6)]
    for headers in spoofed[:ADDRESS_READS]:
        assert (await plain.get("/v1/jobs", headers=headers)).status_code == 401
    # Each request said it came from elsewhere; all were counted for 127.0.0.1.
    assert_limited(await plain.get("/v1/jobs", headers=spoofed[-1]), ADDRESS_READS)
    # Where 127.0.0.1 is a listed proxy, the forwarded address is the client's.
    for headers in spoofed:
        assert (await trusting.get("/v1/jobs", headers=headers)).status_code == 401
    same = spoofed[0]
    for _ in range(ADDRESS_READS - 1):
        await trusting.get("/v1/jobs", headers=same)
    assert_limited(await trusting.get("/v1/jobs", headers=same), ADDRESS_READS)


async def test_without_redis_requests_are_served_uncounted(service: Service) -> None:
    nowhere = f"redis://127.0.0.1:{free_port()}/0"
    settings = service.settings.replace(redis_url=nowhere, rate_limit_owner_reads="1/hour")
    # /ready says Redis is down; /health that the process serves.
    async with (
        gateway_process(settings, "gateway-no-redis", probe="/health") as gateway,
        httpx.AsyncClient(base_url=gateway.url, timeout=10) as client,
    ):
        headers = bearer(service, f"r-{uuid.uuid4().hex[:8]}")
        answers = [(await client.get("/v1/jobs", headers=headers)) for _ in range(10)]
        assert [r.status_code for r in answers] == [200] * 10
        assert not any("ratelimit-limit" in r.headers for r in answers)
        assert (await client.get("/ready")).status_code == 503
    # Redis was asked once, then left alone for a while, not once per request.
    log = gateway.log.read_text()
    assert log.count("rate limits not counted") == 1, log[-2000:]
