"""Tokens: HS256 on the session service; RS256/ES256 from a JWKS on a gateway of the
test's own, whose key server rotates keys while the gateway runs. Scopes: 403."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import jwt
import pytest
import websockets
from conftest import Api, Service
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from gateways import gateway_process
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from test_errors import assert_problem

from gateway.auth import issue_token
from gateway.scopes import ADMIN, READ, WRITE
from ops.stack import free_port
from tests.waits import eventually

ISSUER = "https://issuer.example"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unsigned(claims: dict[str, Any]) -> str:
    """`alg: none`, no signature."""
    header = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{header}.{_b64(json.dumps(claims).encode())}."


def hmac_signed(claims: dict[str, Any], secret: bytes, kid: str) -> str:
    """HS256 by hand: PyJWT itself refuses to use a public key as an HMAC secret."""
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    signing_input = f"{header}.{_b64(json.dumps(claims).encode())}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def claims_for(subject: str, **extra: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {"sub": subject, "aud": "conveyor", "iss": ISSUER, "scope": f"{READ} {WRITE}"}
    base |= {"iat": now, "nbf": now, "exp": now + 300}
    base.update(extra)
    return {k: v for k, v in base.items() if v is not None}


# -- HS256, the session service -------------------------------------------------------


async def test_alg_none_and_foreign_algorithms_are_401(
    http: httpx.AsyncClient, service: Service
) -> None:
    claims = claims_for("mallory", iss=None)
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    for token in (
        unsigned(claims),
        jwt.encode(claims, rsa_key, algorithm="RS256"),
        jwt.encode(claims, service.settings.jwt_secret, algorithm="HS512"),
    ):
        r = await http.get("/v1/jobs", headers={"Authorization": f"Bearer {token}"})
        body = assert_problem(r, 401)
        assert "is not accepted" in str(body["detail"])


async def test_not_yet_valid_token_is_401(http: httpx.AsyncClient, service: Service) -> None:
    claims = claims_for("mallory", iss=None, nbf=int(time.time()) + 300)
    token = jwt.encode(claims, service.settings.jwt_secret, algorithm="HS256")
    r = await http.get("/v1/jobs", headers={"Authorization": f"Bearer {token}"})
    assert "not yet valid" in str(assert_problem(r, 401)["detail"])


def ws_url(service: Service, job_id: str) -> str:
    return service.url.replace("http://", "ws://") + f"/v1/jobs/{job_id}/events"


async def test_each_route_needs_its_scope(
    http: httpx.AsyncClient, service: Service, owner: str
) -> None:
    writer = Api(http, issue_token(service.settings, owner, scopes={WRITE}))
    reader = Api(http, issue_token(service.settings, owner, scopes={READ}))
    nothing = Api(http, issue_token(service.settings, owner, scopes=set()))
    admin = Api(http, issue_token(service.settings, owner, scopes={ADMIN}))

    ticket = await writer.create_upload(b"a\n1\n")
    await writer.put(ticket, b"a\n1\n")
    job_id = ticket["job_id"]
    upload = {"filename": "f.csv", "content_type": "text/csv", "size": 1}
    writes = [
        ("POST", "/v1/uploads", upload),
        ("POST", f"/v1/uploads/{ticket['upload_id']}/complete", None),
    ]
    reads = [
        ("GET", path, None)
        for path in (
            "/v1/jobs",
            f"/v1/jobs/{job_id}",
            f"/v1/jobs/{job_id}/result",
            f"/v1/jobs/{job_id}/artifacts",
        )
    ]
    operations = [("GET", "/v1/admin/status", None)]
    for api, refused in (
        (reader, writes + operations),
        (writer, reads + operations),
        (nothing, writes + reads + operations),
        (admin, writes + reads),
    ):
        for method, path, body in refused:
            r = await api.client.request(method, path, json=body, headers=api.headers)
            problem = assert_problem(r, 403)
            assert "scope" in str(problem["detail"]), (method, path)
    # And each scope opens its own routes.
    r = await writer.post(f"/v1/uploads/{ticket['upload_id']}/complete")
    assert r.status_code == 202, r.text
    assert (await reader.get(f"/v1/jobs/{job_id}")).status_code == 200
    status = await admin.get("/v1/admin/status")
    assert status.status_code == 200, status.text
    assert {s["name"] for s in status.json()["streams"]} == {"JOBS", "DEADLETTER"}
    # The WebSocket is a read: refused at the handshake without the scope.
    with pytest.raises(websockets.InvalidStatus) as refused_ws:
        async with websockets.connect(ws_url(service, job_id) + f"?token={writer.token}"):
            pass
    assert refused_ws.value.response.status_code == 403
    async with websockets.connect(ws_url(service, job_id) + f"?token={reader.token}") as ws:
        assert json.loads(await ws.recv())["type"] == "uploaded"


async def test_idempotent_replay_needs_the_write_scope(
    http: httpx.AsyncClient, service: Service, owner: str
) -> None:
    writer = Api(http, issue_token(service.settings, owner, scopes={WRITE}))
    reader = Api(http, issue_token(service.settings, owner, scopes={READ}))
    body = {"filename": "f.csv", "content_type": "text/csv", "size": 1}
    key = {"Idempotency-Key": f"scoped-{uuid.uuid4()}"}
    first = await writer.post("/v1/uploads", json=body, headers=key)
    assert first.status_code == 201, first.text
    # The same owner, key and body, but a token that may not write: no stored answer.
    again = await reader.post("/v1/uploads", json=body, headers=key)
    assert_problem(again, 403)
    assert first.json()["url"] not in again.text


async def test_websocket_closes_when_its_token_expires(
    api: Api, service: Service, owner: str
) -> None:
    ticket, _ = await api.submit(b"a\n1\n")
    # Expired 5 s ago, inside the clock leeway: accepted at the handshake, then closed.
    claims = claims_for(owner, iss=None, exp=int(time.time()) - 5)
    token = jwt.encode(claims, service.settings.jwt_secret, algorithm="HS256")
    async with websockets.connect(ws_url(service, ticket["job_id"]) + f"?token={token}") as ws:
        with pytest.raises(websockets.ConnectionClosed):
            await ws.recv()
    assert ws.close_code == 4401


# -- RS256/ES256 from a JWKS ----------------------------------------------------------


@dataclass
class KeyServer:
    """A real HTTP server publishing a JWKS; `keys` can be replaced while it runs."""

    keys: list[dict[str, Any]] = field(default_factory=list)
    fetches: int = 0
    url: str = ""


@dataclass
class SigningKey:
    kid: str
    alg: str
    private: Any

    def jwk(self) -> dict[str, Any]:
        algorithm = RSAAlgorithm if self.alg == "RS256" else ECAlgorithm
        public: dict[str, Any] = algorithm.to_jwk(self.private.public_key(), as_dict=True)
        return public | {"kid": self.kid, "use": "sig"}

    def sign(self, claims: dict[str, Any], **header: Any) -> str:
        return jwt.encode(
            claims, self.private, algorithm=self.alg, headers={"kid": self.kid} | header
        )


def rsa_key(kid: str) -> SigningKey:
    return SigningKey(kid, "RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048))


def ec_key(kid: str) -> SigningKey:
    return SigningKey(kid, "ES256", ec.generate_private_key(ec.SECP256R1()))


@pytest.fixture(scope="module")
def key_server() -> Iterator[KeyServer]:
    state = KeyServer()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.fetches += 1
            body = json.dumps({"keys": state.keys}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    state.url = f"http://127.0.0.1:{server.server_port}/.well-known/jwks.json"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


MIN_REFRESH = 1.0


@pytest.fixture(scope="module")
async def jwks_gateway(service: Service, key_server: KeyServer) -> AsyncIterator[str]:
    settings = service.settings.replace(
        jwt_jwks_url=key_server.url,
        jwt_issuer=ISSUER,
        jwt_jwks_min_refresh_seconds=MIN_REFRESH,
    )
    async with gateway_process(settings, "gateway-jwks") as gateway:
        yield gateway.url


async def status_with(url: str, token: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        return await client.get("/v1/jobs", headers={"Authorization": f"Bearer {token}"})


async def test_jwks_keys_rotate_without_a_restart(
    jwks_gateway: str, key_server: KeyServer, owner: str
) -> None:
    old, new = rsa_key(f"old-{uuid.uuid4().hex[:6]}"), ec_key(f"new-{uuid.uuid4().hex[:6]}")
    key_server.keys = [old.jwk()]
    claims = claims_for(owner)
    await eventually(
        lambda: _accepted(jwks_gateway, old.sign(claims)), within=10, what="old key accepted"
    )
    # The issuer rotates: only the new key is published now.
    key_server.keys = [new.jwk()]
    await eventually(
        lambda: _accepted(jwks_gateway, new.sign(claims)), within=10, what="new key accepted"
    )
    r = await status_with(jwks_gateway, old.sign(claims))
    assert "unknown key id" in str(assert_problem(r, 401)["detail"])


async def _accepted(url: str, token: str) -> bool:
    return (await status_with(url, token)).status_code == 200


async def test_jwks_unknown_kids_do_not_hammer_the_issuer(
    jwks_gateway: str, key_server: KeyServer, owner: str
) -> None:
    key = rsa_key(f"k-{uuid.uuid4().hex[:6]}")
    key_server.keys = [key.jwk()]
    before, started = key_server.fetches, time.monotonic()
    for _ in range(30):
        forged = key.sign(claims_for(owner), kid=f"made-up-{uuid.uuid4().hex}")
        assert_problem(await status_with(jwks_gateway, forged), 401)
    elapsed = time.monotonic() - started
    assert key_server.fetches - before <= 1 + elapsed / MIN_REFRESH


async def test_jwks_refuses_confusion_and_bad_claims(
    jwks_gateway: str, key_server: KeyServer, owner: str
) -> None:
    rsa_signer = rsa_key(f"r-{uuid.uuid4().hex[:6]}")
    ec_signer = ec_key(f"e-{uuid.uuid4().hex[:6]}")
    secret = base64.urlsafe_b64encode(b"s" * 32).rstrip(b"=").decode()
    symmetric = {"kty": "oct", "k": secret, "kid": "sym", "use": "sig"}
    key_server.keys = [rsa_signer.jwk(), ec_signer.jwk(), symmetric]
    claims = claims_for(owner)
    await eventually(
        lambda: _accepted(jwks_gateway, ec_signer.sign(claims)), within=10, what="keys"
    )
    pem = rsa_signer.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    attacks = {
        # HMAC keyed with the published RSA key: the classic confusion.
        "hs256-with-public-key": hmac_signed(claims, pem, rsa_signer.kid),
        # A symmetric key published in the set is never used.
        "hs256-with-published-oct": jwt.encode(
            claims, b"s" * 32, algorithm="HS256", headers={"kid": "sym"}
        ),
        # The header says ES256, the kid names an RSA key.
        "alg-kid-mismatch": jwt.encode(
            claims, ec_signer.private, algorithm="ES256", headers={"kid": rsa_signer.kid}
        ),
        "alg-none": unsigned(claims | {"kid": rsa_signer.kid}),
        "no-kid": jwt.encode(claims, rsa_signer.private, algorithm="RS256"),
        "wrong-signer": jwt.encode(
            claims, other, algorithm="RS256", headers={"kid": rsa_signer.kid}
        ),
        "wrong-issuer": rsa_signer.sign(claims | {"iss": "https://evil.example"}),
        "no-issuer": rsa_signer.sign(claims_for(owner, iss=None)),
        "wrong-audience": rsa_signer.sign(claims | {"aud": "another-service"}),
        "expired": rsa_signer.sign(claims | {"exp": int(time.time()) - 120}),
        "not-yet-valid": rsa_signer.sign(claims | {"nbf": int(time.time()) + 300}),
    }
    answers = {
        name: (await status_with(jwks_gateway, t)).status_code for name, t in attacks.items()
    }
    assert answers == dict.fromkeys(attacks, 401)
    assert await _accepted(jwks_gateway, rsa_signer.sign(claims))
