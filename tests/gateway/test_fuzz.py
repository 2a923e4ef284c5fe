"""Schemathesis against the running gateway's own OpenAPI document.

Every operation in `/schema/openapi.json` is sent a bounded number of generated
requests (valid and invalid), authenticated with a token holding every scope. Any 5xx,
any status the document does not list, any body off its schema, any undocumented
content type or missing documented header fails. Operations that take an id are also
sent each generated request aimed at a real job or upload of the same owner, so the
success bodies are checked too, not only the 404s.

The document is read from the live gateway at run time, so the cases come from
`APIOperation.as_strategy` under Hypothesis' own `@given`, one subtest per operation:
`schemathesis.pytest.from_fixture`, the loader meant for this, sets `Node._nodeid`,
which pytest 9.2 no longer has (AttributeError before any request).
"""

from __future__ import annotations

import re
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from conftest import Api, Service
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from litestar.handlers import HTTPRouteHandler, WebsocketRouteHandler
from schemathesis import Case, GenerationMode
from schemathesis.checks import (
    CheckFunction,
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.result import Err, Ok

from gateway.app import MIXED_ROUTES, OPEN_ROUTES, SCOPED_ROUTES
from gateway.auth import issue_token
from gateway.scopes import ALL_SCOPES

# Per operation: this many generated requests (twice that for operations aimed at a
# real id too), always the same ones: a failure here fails again on the next run.
MAX_EXAMPLES = 25
Operation = schemathesis.APIOperation[Any, Any, Any, Any]
ACCEPTED_CONTENT_TYPE = "text/csv"
# Not in the document (OpenAPI has no WebSockets); `tests/gateway/test_events.py` owns it.
# WebSockets (no OpenAPI operation) and the job's web page (HTML for people, not API);
# tests/gateway/test_feed.py and test_page.py hold them to their owners.
UNDOCUMENTED = {
    ("WS", "/v1/jobs/{job_id}/events"),
    ("WS", "/v1/events"),
    ("GET", "/jobs/{job_id}"),
}

CHECKS: list[CheckFunction] = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


@dataclass(frozen=True)
class Reader:
    """The owner every read is made as, and its finished job (result and artifacts)."""

    token: str
    job_id: str


@pytest.fixture(scope="module")
async def reader(service: Service) -> Reader:
    token = issue_token(service.settings, f"fuzz-{uuid.uuid4().hex[:12]}", scopes=ALL_SCOPES)
    async with httpx.AsyncClient(base_url=service.url, timeout=10) as client:
        api = Api(client, token)
        ticket, _ = await api.submit(b"a,b\n1,x\n2,y\n3,z\n")
        job = await api.wait_terminal(ticket["job_id"])
    assert job["status"] == "succeeded", job  # so `/result` and `/artifacts` can answer 200
    return Reader(token=token, job_id=ticket["job_id"])


@pytest.fixture(scope="module")
def statuses() -> Iterator[Counter[tuple[str, int]]]:
    """(operation, status) -> responses; printed at the end, for the record."""
    seen: Counter[tuple[str, int]] = Counter()
    yield seen
    per_operation = Counter[str]()
    for (label, _), n in seen.items():
        per_operation[label] += n
    for label in sorted(per_operation):
        codes = ", ".join(f"{s}x{n}" for (lb, s), n in sorted(seen.items()) if lb == label)
        print(f"{label}: {per_operation[label]} requests ({codes})")


@pytest.fixture(scope="module")
def api_schema(service: Service) -> schemathesis.BaseSchema:
    """The live gateway's document, as the fuzzing reads it."""
    config = schemathesis.Config.from_dict({"base-url": service.url})
    return schemathesis.openapi.from_url(f"{service.url}/schema/openapi.json", config=config)


def _has_inputs(operation: Operation) -> bool:
    definition = operation.definition.raw
    return bool(definition.get("parameters") or definition.get("requestBody"))


def _aim(case: Case[Any], ids: dict[str, str]) -> bool:
    """Point `case` at what exists: real ids, an accepted content type. Changed anything?"""
    before = (dict(case.path_parameters or {}), case.body)
    if case.path_parameters:
        case.path_parameters = {
            **case.path_parameters,
            **{k: ids[k] for k in case.path_parameters if k in ids},
        }
    if isinstance(case.body, dict) and "content_type" in case.body:
        # The document allows any `type/subtype`; the gateway only its allow-list.
        case.body = {**case.body, "content_type": ACCEPTED_CONTENT_TYPE}
        if case.headers and case.body != before[1]:
            # Its key was just used with the other body: that 409 is already checked.
            case.headers.pop("Idempotency-Key", None)
    return (dict(case.path_parameters or {}), case.body) != before


def _fuzz(
    operation: Operation,
    base_url: str,
    token: str,
    ids: dict[str, str],
    seen: Counter[tuple[str, int]],
) -> None:
    modes = [GenerationMode.POSITIVE]
    if _has_inputs(operation):
        modes.append(GenerationMode.NEGATIVE)
    cases = st.one_of(*(operation.as_strategy(mode) for mode in modes))
    headers = {"Authorization": f"Bearer {token}"}

    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        # No shrinking: each step is a request; the first failing one is reported as is.
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases)
    def run(case: Case[Any]) -> None:
        with requests.Session() as session:
            kw: dict[str, Any] = {"base_url": base_url, "session": session, "checks": CHECKS}
            response = case.call_and_validate(headers=headers, **kw)
            seen[(operation.label, response.status_code)] += 1
            if _aim(case, ids):
                # The same request at something that exists: the success answers' turn.
                response = case.call_and_validate(headers=headers, **kw)
                seen[(operation.label, response.status_code)] += 1

    run()


def test_openapi_document_holds(
    api_schema: schemathesis.BaseSchema,
    service: Service,
    reader: Reader,
    statuses: Counter[tuple[str, int]],
    subtests: pytest.Subtests,
) -> None:
    """Each operation of the live document, fuzzed; one subtest per operation.

    Reads are made as `reader`; each write operation as an owner of its own (the write
    budgets are per owner), which also owns the upload its `upload_id` is aimed at.
    """
    results = list(api_schema.get_all_operations())
    operations = [result.ok() for result in results if isinstance(result, Ok)]
    assert operations
    assert len(operations) == len(results), [r.err() for r in results if isinstance(r, Err)]
    for operation in operations:
        with subtests.test(msg=operation.label):
            token, ids = reader.token, {"job_id": reader.job_id}
            if operation.method.upper() != "GET":
                owner = f"fuzz-{uuid.uuid4().hex[:12]}"
                token = issue_token(service.settings, owner, scopes=ALL_SCOPES)
                ids = {"upload_id": _new_upload(service.url, token)}
            _fuzz(operation, service.url, token, ids, statuses)


def _new_upload(base_url: str, token: str) -> str:
    r = requests.post(
        f"{base_url}/v1/uploads",
        json={"filename": "fuzz.csv", "content_type": ACCEPTED_CONTENT_TYPE, "size": 4},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert r.status_code == 201, r.text
    upload_id: str = r.json()["upload_id"]
    return upload_id


def _app_routes() -> set[tuple[str, str]]:
    """(method, path) of every route the gateway serves, from the handlers it is built of."""
    found: set[tuple[str, str]] = set()
    handlers = [h for group in SCOPED_ROUTES.values() for h in group]
    handlers += MIXED_ROUTES + OPEN_ROUTES
    for handler in handlers:
        assert isinstance(handler, HTTPRouteHandler | WebsocketRouteHandler)
        for raw in handler.paths:
            path = re.sub(r"\{(\w+):\w+\}", r"{\1}", raw)  # "{job_id:str}" as documented
            if isinstance(handler, WebsocketRouteHandler):
                found.add(("WS", path))
            else:
                found |= {(m, path) for m in handler.http_methods if m not in ("HEAD", "OPTIONS")}
    return found


async def test_every_route_is_in_the_document(http: httpx.AsyncClient, service: Service) -> None:
    document = (await http.get("/schema/openapi.json")).json()
    documented = {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in ("get", "put", "post", "delete", "patch")
    }
    served = _app_routes()
    assert served - UNDOCUMENTED == documented, "a route the fuzzing would not reach"
    assert served >= UNDOCUMENTED, "UNDOCUMENTED lists a route that is gone"


async def test_every_operation_documents_its_problems(http: httpx.AsyncClient) -> None:
    """Statuses fuzzing with a good token can not provoke (401, 403, 429, 503) are still
    listed, as problem documents, with the headers that come with them."""
    document = (await http.get("/schema/openapi.json")).json()
    public = {"/health", "/ready"}
    for path, item in document["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            expected = {"500"} if path in public else {"401", "403", "429", "500", "503"}
            assert expected <= responses.keys(), (method, path, sorted(responses))
            for status, response in responses.items():
                if status.startswith(("4", "5")):
                    content = response.get("content", {})
                    assert list(content) == ["application/problem+json"], (method, path, status)
                    ref = content["application/problem+json"]["schema"]["$ref"]
                    assert ref == "#/components/schemas/Problem"
                assert "X-Request-ID" in response.get("headers", {}), (method, path, status)
            if "429" in responses:
                assert {"Retry-After", "RateLimit-Limit", "RateLimit-Remaining"} <= set(
                    responses["429"]["headers"]
                )
            if "503" in responses:
                assert "Retry-After" in responses["503"]["headers"]


HOSTILE_BODIES = {
    # Within the body size limit, past the decoder's recursion limit: was a 500.
    "nested-arrays": b"[" * 5000 + b"]" * 5000,
    "nested-objects": b'{"a":' * 5000 + b"1" + b"}" * 5000,
    "bom": b'\xef\xbb\xbf{"filename": "a.csv", "content_type": "text/csv", "size": 1}',
    "lone-surrogate": b'{"filename": "\\ud800", "content_type": "text/csv", "size": 1}',
    "form": b"filename=a.csv&content_type=text%2Fcsv&size=1",
    "empty": b"",
    "null": b"null",
}


@pytest.mark.parametrize("body", HOSTILE_BODIES.values(), ids=HOSTILE_BODIES.keys())
async def test_hostile_bodies_are_documented_4xx(
    http: httpx.AsyncClient, reader: Reader, body: bytes
) -> None:
    """Bodies the generator does not make: each a 4xx problem the document lists."""
    document = (await http.get("/schema/openapi.json")).json()
    documented = document["paths"]["/v1/uploads"]["post"]["responses"]
    r = await http.post(
        "/v1/uploads",
        content=body,
        headers={"Authorization": f"Bearer {reader.token}", "content-type": "application/json"},
    )
    assert 400 <= r.status_code < 500, r.text
    assert str(r.status_code) in documented, r.text
    assert r.headers["content-type"].startswith("application/problem+json")


async def test_documented_401_and_403_are_real(http: httpx.AsyncClient, service: Service) -> None:
    """What the fuzzing's good token never meets: no token is 401, no scope is 403."""
    document = (await http.get("/schema/openapi.json")).json()
    scopeless = issue_token(service.settings, f"fuzz-{uuid.uuid4().hex[:12]}", scopes=set())
    for template, item in document["paths"].items():
        path = template.replace("{job_id}", str(uuid.uuid4())).replace(
            "{upload_id}", str(uuid.uuid4())
        )
        for method, operation in item.items():
            if "401" not in operation["responses"]:
                continue
            r = await http.request(method.upper(), path)
            assert r.status_code == 401, (method, template, r.text)
            assert r.headers["www-authenticate"].startswith("Bearer")
            r = await http.request(
                method.upper(), path, headers={"Authorization": f"Bearer {scopeless}"}
            )
            assert r.status_code == 403, (method, template, r.text)
            assert r.headers["content-type"].startswith("application/problem+json")
