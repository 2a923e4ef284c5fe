"""/v1/webhooks: register, list, delete; each owner's own; URLs checked."""

from __future__ import annotations

import uuid

import httpx
import pytest
from conftest import Api, Service
from gateways import gateway_process

from gateway.auth import issue_token


async def test_create_list_delete(api: Api, other_api: Api) -> None:
    r = await api.post("/v1/webhooks", json={"url": "https://example.com/hook"})
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["events"] == ["rejected", "processed", "failed"]
    assert created["secret"].startswith("whsec_")
    assert len(created["secret"]) > 40
    r = await api.post(
        "/v1/webhooks",
        json={"url": "https://example.com/all", "events": ["failed", "uploaded", "failed"]},
    )
    assert r.json()["events"] == ["uploaded", "failed"]  # in a job's order, once each
    listed = (await api.get("/v1/webhooks")).json()["items"]
    assert [h["url"] for h in listed] == ["https://example.com/hook", "https://example.com/all"]
    assert all("secret" not in h for h in listed)
    # Another owner neither sees nor deletes them.
    assert (await other_api.get("/v1/webhooks")).json() == {"items": []}
    path = f"/v1/webhooks/{created['webhook_id']}"
    async with httpx.AsyncClient(base_url=str(api.client.base_url)) as client:
        other = {"Authorization": f"Bearer {other_api.token}"}
        assert (await client.delete(path, headers=other)).status_code == 404
        mine = {"Authorization": f"Bearer {api.token}"}
        assert (await client.delete(path, headers=mine)).status_code == 204
        assert (await client.delete(path, headers=mine)).status_code == 404
        bad = await client.delete("/v1/webhooks/not-an-id", headers=mine)
        assert bad.status_code == 404
        assert bad.headers["content-type"] == "application/problem+json"
    listed = (await api.get("/v1/webhooks")).json()["items"]
    assert [h["url"] for h in listed] == ["https://example.com/all"]


@pytest.mark.parametrize(
    "body",
    [
        {"url": "ftp://example.com/x"},
        {"url": "https://user:pw@example.com/x"},
        {"url": "https:///x"},
        {"url": "https://example.com/x#frag"},
        {"url": "https://example.com:99999/x"},
        {"url": "https://example.com/x", "events": ["finished"]},
        {"url": "https://example.com/x", "events": []},
        {"url": "https://example.com/x", "secret": "mine"},
        {"url": "https://example.com/" + "x" * 2100},
    ],
)
async def test_bad_bodies_are_refused(api: Api, body: dict[str, object]) -> None:
    r = await api.post("/v1/webhooks", json=body)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"


async def test_owner_cap(api: Api, service: Service) -> None:
    cap = service.settings.max_webhooks_per_owner
    for i in range(cap):
        r = await api.post("/v1/webhooks", json={"url": f"https://example.com/{i}"})
        assert r.status_code == 201
    r = await api.post("/v1/webhooks", json={"url": "https://example.com/more"})
    assert r.status_code == 409
    assert len((await api.get("/v1/webhooks")).json()["items"]) == cap


async def test_private_addresses_are_refused_unless_allowed(service: Service) -> None:
    settings = service.settings.replace(webhook_allow_private=False)
    owner = f"hooks-{uuid.uuid4().hex[:8]}"
    headers = {"Authorization": f"Bearer {issue_token(service.settings, owner)}"}
    async with (
        gateway_process(settings, "gateway-webhooks-public") as gateway,
        httpx.AsyncClient(base_url=gateway.url, headers=headers, timeout=10) as client,
    ):
        for url in ("http://127.0.0.1:8080/x", "http://10.1.2.3/x", "http://localhost/x"):
            r = await client.post("/v1/webhooks", json={"url": url})
            assert r.status_code == 422, url
            assert "not a public" in r.json()["detail"]
        r = await client.post("/v1/webhooks", json={"url": "https://93.184.215.14/x"})
        assert r.status_code == 201
