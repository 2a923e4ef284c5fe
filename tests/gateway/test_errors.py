"""Authentication, owner scoping and bad input: each answers a problem document."""

from __future__ import annotations

import base64
import time
import uuid

import httpx
import jwt
import pytest
import websockets
from conftest import Api, Service
from litestar import Litestar, get
from litestar.exceptions import HTTPException

from gateway.problems import on_exception, on_http_exception
from gateway.requests import RequestIds

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
        {"exp": int(time.time()) - 120},
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


# Routes that are not about one owner's objects: probes, the document itself, and
# operations (the `admin` scope, checked in test_auth).
NOT_OWNED = {"/health", "/ready", "/v1/admin/status"}
EVENTS = "/v1/jobs/{job_id}/events"


async def test_other_owner_gets_404_on_every_route(
    api: Api, other_api: Api, service: Service
) -> None:
    """Walks every route in the OpenAPI document, and the WebSocket, as a second owner."""
    ticket, _ = await api.submit(b"a\n1\n")
    hook = (await api.post("/v1/webhooks", json={"url": "https://example.com/h"})).json()
    ids = {
        "job_id": ticket["job_id"],
        "upload_id": ticket["upload_id"],
        "webhook_id": hook["webhook_id"],
    }
    ended = await api.wait_terminal(ticket["job_id"])
    schema = (await api.get("/schema/openapi.json")).json()
    walked = set()
    for template, operations in schema["paths"].items():
        if template in NOT_OWNED:
            continue
        path = template.format(**ids)
        for method in operations:
            r = await other_api.client.request(method.upper(), path, headers=other_api.headers)
            if "{" in template:
                body = assert_problem(r, 404)
                # The same answer as for an id that never existed.
                unknown = template.format(**dict.fromkeys(ids, str(uuid.uuid4())))
                r2 = await api.client.request(method.upper(), unknown, headers=api.headers)
                assert assert_problem(r2, 404)["title"] == body["title"]
            else:
                # Collections: the other owner's objects are simply not in them.
                assert r.status_code in (200, 422), (method, path, r.text)
                if r.status_code == 200:
                    assert ticket["job_id"] not in r.text
            walked.add((method.upper(), template))
    assert walked >= {
        ("POST", "/v1/uploads/{upload_id}/complete"),
        ("GET", "/v1/jobs/{job_id}"),
        ("GET", "/v1/jobs/{job_id}/result"),
        ("GET", "/v1/jobs/{job_id}/artifacts"),
        ("GET", "/v1/jobs"),
        ("DELETE", "/v1/webhooks/{webhook_id}"),
        ("GET", "/v1/webhooks"),
    }
    # The owner's webhook is still there, and the other owner has none.
    assert [h["webhook_id"] for h in (await api.get("/v1/webhooks")).json()["items"]] == [
        hook["webhook_id"]
    ]
    # The WebSocket (not in the OpenAPI document): closed with 4404 like an unknown job.
    for job_id in (ticket["job_id"], str(uuid.uuid4())):
        url = service.url.replace("http://", "ws://") + EVENTS.format(job_id=job_id)
        async with websockets.connect(f"{url}?token={other_api.token}") as ws:
            with pytest.raises(websockets.ConnectionClosed):
                await ws.recv()
            assert ws.close_code == 4404
    # And the completed upload was not completed a second time by the other owner.
    job = (await api.get(f"/v1/jobs/{ticket['job_id']}")).json()
    assert job["status"] == "succeeded"
    # Nothing the other owner sent changed the job or added one to this owner's (the
    # list is read from Postgres, not from the cache of ended jobs).
    listed = (await api.get("/v1/jobs")).json()["items"]
    assert [(j["job_id"], j["updated_at"]) for j in listed] == [
        (job["job_id"], ended["updated_at"])
    ]


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
        {"filename": "a.csv", "content_type": "text/csv", "size": 1, "job_id": str(uuid.uuid4())},
        {"filename": "a.csv", "content_type": "text/csv", "size": 1, "key": "other/prefix/f"},
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
        "job-id",
        "object-key",
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
    from conftest import connect_as

    from gateway.idempotency import ABANDONED_AFTER, Remembered, slot_for
    from schemas import subjects

    key = f"key-{uuid.uuid4()}"
    body = {"filename": "a.csv", "content_type": "text/csv", "size": 3}
    raw = msgspec.json.encode(body)
    # As the gateway that reserved the key and died.
    nc = await connect_as(service.settings, "gateway")
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


async def test_unexpected_exception_is_a_500_problem_without_internals() -> None:
    """The gateway's own handlers and request ids, around a route that fails."""

    @get("/boom")
    async def boom() -> None:
        raise RuntimeError("password=hunter2 at /srv/conveyor/secret.py")

    app = RequestIds(
        Litestar(
            route_handlers=[boom],
            exception_handlers={HTTPException: on_http_exception, Exception: on_exception},
            logging_config=None,
        )
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        r = await client.get("/boom", headers={"X-Request-ID": "trace-500"})
    body = assert_problem(r, 500)
    assert body["request_id"] == r.headers["x-request-id"] == "trace-500"
    for leak in ("hunter2", "secret.py", "RuntimeError", "Traceback"):
        assert leak not in r.text
