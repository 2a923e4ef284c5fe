"""Authentication, owner scoping and bad input: each answers a problem document."""

from __future__ import annotations

import base64
import time
import uuid

import httpx
import jwt
import pytest
from conftest import Api, Service

PROBLEM = "application/problem+json"


def assert_problem(r: httpx.Response, status: int) -> dict[str, object]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    body: dict[str, object] = r.json()
    assert body["status"] == status
    assert body["title"]
    assert body["detail"]
    assert r.headers["x-request-id"]
    return body


def forged(service: Service, **claims: object) -> str:
    base: dict[str, object] = {"sub": "mallory", "aud": "conveyor", "exp": int(time.time()) + 60}
    base.update(claims)
    secret = claims.pop("_secret", service.settings.jwt_secret)
    return jwt.encode({k: v for k, v in base.items() if v is not None}, str(secret))


@pytest.mark.parametrize(
    "claims",
    [
        {"aud": "someone-else"},
        {"exp": int(time.time()) - 10},
        {"_secret": "not-the-secret-" * 4},
        {"sub": None},
    ],
    ids=["audience", "expired", "signature", "no-subject"],
)
async def test_bad_token_is_401(
    http: httpx.AsyncClient, service: Service, claims: dict[str, object]
) -> None:
    token = forged(service, **claims)
    r = await http.get("/v1/jobs", headers={"Authorization": f"Bearer {token}"})
    body = assert_problem(r, 401)
    assert "invalid token" in str(body["detail"])
    assert r.headers["www-authenticate"].startswith("Bearer")


async def test_missing_token_is_401(http: httpx.AsyncClient) -> None:
    for method, path in (("GET", "/v1/jobs"), ("POST", "/v1/uploads")):
        assert_problem(await http.request(method, path), 401)


async def test_unauthenticated_health_ready_schema(http: httpx.AsyncClient) -> None:
    assert (await http.get("/health")).json() == {"status": "ok"}
    ready = await http.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"nats": "ok", "postgres": "ok", "redis": "ok", "s3": "ok"}
    schema = (await http.get("/schema/openapi.json")).json()
    assert "/v1/uploads" in schema["paths"]
    assert "/v1/jobs/{job_id}" in schema["paths"]


async def test_other_owner_gets_404_everywhere(api: Api, other_api: Api) -> None:
    ticket, _ = await api.submit(b"a\n1\n")
    job_id, upload_id = ticket["job_id"], ticket["upload_id"]
    await api.wait_terminal(job_id)
    for path in (f"/v1/jobs/{job_id}", f"/v1/jobs/{job_id}/result"):
        assert_problem(await other_api.get(path), 404)
    assert_problem(await other_api.post(f"/v1/uploads/{upload_id}/complete"), 404)
    assert (await other_api.get("/v1/jobs")).json()["items"] == []
    # The same answer as for ids that never existed.
    assert_problem(await api.get(f"/v1/jobs/{uuid.uuid4()}"), 404)
    assert_problem(await api.get("/v1/jobs/not-a-uuid"), 404)
    assert_problem(await api.post(f"/v1/uploads/{uuid.uuid4()}/complete"), 404)


async def test_declared_size_over_limit_is_413(api: Api, service: Service) -> None:
    body = {
        "filename": "big.csv",
        "content_type": "text/csv",
        "size": service.settings.max_upload_bytes + 1,
    }
    assert_problem(await api.post("/v1/uploads", json=body), 413)


@pytest.mark.parametrize(
    "body",
    [
        {"filename": "a.csv", "content_type": "text/csv"},
        {"filename": "a.csv", "content_type": "text/csv", "size": "ten"},
        {"filename": "a.csv", "content_type": "text/csv", "size": -1},
        {"filename": "", "content_type": "text/csv", "size": 1},
        {"filename": "a\u0000.csv", "content_type": "text/csv", "size": 1},
        {"filename": "a\n.csv", "content_type": "text/csv", "size": 1},
        {"filename": "a.csv", "content_type": "not a type", "size": 1},
        {"filename": "a.csv", "content_type": "text/csv", "size": 1, "owner": "mallory"},
        {"filename": "a.csv", "content_type": "text/csv", "size": 1, "status": "succeeded"},
    ],
    ids=[
        "missing",
        "type",
        "negative",
        "empty-name",
        "nul-name",
        "newline-name",
        "content-type",
        "owner",
        "status",
    ],
)
async def test_bad_upload_body_is_422(api: Api, body: dict[str, object]) -> None:
    before = (await api.get("/v1/jobs")).json()
    assert_problem(await api.post("/v1/uploads", json=body), 422)
    assert (await api.get("/v1/jobs")).json() == before


async def test_malformed_json_is_4xx_problem(api: Api) -> None:
    r = await api.post(
        "/v1/uploads",
        content=b"{not json",
        headers={**api.headers, "content-type": "application/json"},
    )
    assert 400 <= r.status_code < 500
    assert r.headers["content-type"].startswith(PROBLEM)


async def test_bad_list_parameters_are_422(api: Api) -> None:
    assert_problem(await api.get("/v1/jobs", params={"status": "nope"}), 422)
    assert_problem(await api.get("/v1/jobs", params={"cursor": "!!"}), 422)
    forged = base64.urlsafe_b64encode(f"9999-12-31T23:59:59-14:00|{uuid.uuid4()}".encode())
    assert_problem(await api.get("/v1/jobs", params={"cursor": forged.decode()}), 422)
    assert_problem(await api.get("/v1/jobs", params={"limit": 0}), 422)


async def test_unknown_route_and_method_are_problems(api: Api) -> None:
    assert_problem(await api.get("/v1/nothing-here"), 404)
    r = await api.client.delete("/v1/uploads", headers=api.headers)
    assert_problem(r, 405)


async def test_request_id_is_echoed(api: Api) -> None:
    r = await api.get("/v1/jobs", headers={**api.headers, "X-Request-ID": "trace-123"})
    assert r.headers["x-request-id"] == "trace-123"
    r = await api.get("/v1/jobs", headers={**api.headers, "X-Request-ID": "bad id; drop table"})
    assert r.headers["x-request-id"] != "bad id; drop table"
    assert len(r.headers["x-request-id"]) == 32


async def test_idempotency_key_gives_the_first_answer_again(api: Api) -> None:
    body = {"filename": "same.csv", "content_type": "text/csv", "size": 10}
    key = {"Idempotency-Key": f"key-{uuid.uuid4()}"}
    first = await api.post("/v1/uploads", json=body, headers=key)
    again = await api.post("/v1/uploads", json=body, headers=key)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    # The same key with another body is a conflict, and changes nothing.
    other = await api.post("/v1/uploads", json={**body, "size": 11}, headers=key)
    assert_problem(other, 409)
    # Keys are the owner's own: another route or a new key makes a new upload.
    fresh = await api.post("/v1/uploads", json=body, headers={"Idempotency-Key": "another"})
    assert fresh.json()["upload_id"] != first.json()["upload_id"]


async def test_idempotency_key_is_not_kept_for_errors(api: Api) -> None:
    key = {"Idempotency-Key": f"key-{uuid.uuid4()}"}
    bad = {"filename": "x.csv", "content_type": "text/csv", "size": -1}
    assert_problem(await api.post("/v1/uploads", json=bad, headers=key), 422)
    assert_problem(await api.post("/v1/uploads", json=bad, headers=key), 422)
    # Had the 422 been kept, a good body under the same key would be a 409 conflict.
    good = await api.post("/v1/uploads", json={**bad, "size": 10}, headers=key)
    assert good.status_code == 201, good.text
    assert "idempotent-replayed" not in good.headers


async def test_abandoned_idempotency_reservation_is_taken_over(
    api: Api, owner: str, service: Service
) -> None:
    import hashlib

    import msgspec
    import nats

    from gateway.idempotency import ABANDONED_AFTER, Remembered, slot_for
    from schemas import subjects

    key = f"key-{uuid.uuid4()}"
    body = {"filename": "a.csv", "content_type": "text/csv", "size": 3}
    raw = msgspec.json.encode(body)
    nc = await nats.connect(service.settings.nats_url)
    try:
        kv = await nc.jetstream().key_value(subjects.IDEMPOTENCY_BUCKET)
        slot = slot_for(owner, "/v1/uploads", key.encode())
        # A gateway reserved the key, then died before answering.
        stale = Remembered(
            request=hashlib.sha256(raw).hexdigest(), reserved_at=time.time() - ABANDONED_AFTER - 1
        )
        await kv.put(slot, msgspec.json.encode(stale))
    finally:
        await nc.close()
    r = await api.post(
        "/v1/uploads",
        content=raw,
        headers={"Idempotency-Key": key, "content-type": "application/json"},
    )
    assert r.status_code == 201, r.text
