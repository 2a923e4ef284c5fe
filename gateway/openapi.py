"""What the OpenAPI document says each operation can answer besides its success.

Every error leaves as an RFC 9457 problem document (`gateway.problems`), so each
operation lists its error statuses with `application/problem+json` and the `Problem`
schema, through Litestar's own `responses=` on the handler:

    @get("/v1/jobs/{job_id:str}", responses=problems(404, scope=READ),
         operation_class=ProblemOperation)

`problems` adds what every route can answer: 500, and, behind authentication, 401,
403, 429 and 503. `ProblemOperation` adds what `ResponseSpec` can not say: the response
headers (Retry-After, RateLimit-*, WWW-Authenticate, X-Request-ID), the Idempotency-Key
request header of the operations that honour it, and it drops Litestar's generated 400
"ValidationException" response, a shape this API never sends (validation is 422, see
`gateway.problems.on_http_exception`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus

from litestar.openapi import ResponseSpec
from litestar.openapi.spec import (
    OpenAPIHeader,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Parameter,
    Reference,
    Schema,
)

from gateway.problems import MEDIA_TYPE as PROBLEM_MEDIA_TYPE
from schemas.api import Problem

# The statuses every operation can answer: the exception handler's last resort.
ALWAYS = (500,)
# And every operation behind the bearer token: the token, its scope, the rate limits,
# and the backing services its reads and writes need.
AUTHENTICATED = (401, 403, 429, 503)

DESCRIPTIONS: dict[int, str] = {
    400: "The body is not JSON, or is nested too deeply.",
    401: "No bearer token, or an invalid one: malformed, expired, not yet valid, another"
    " audience or issuer, a bad signature.",
    403: "The token lacks the scope this operation needs.",
    404: "No such resource for this owner: an unknown or malformed id, or another owner's"
    " (the two are indistinguishable).",
    409: "The Idempotency-Key was used with another request body, or a request with it is"
    " still in progress.",
    413: "The request body is over the size limit.",
    422: "A parameter, header or body that does not fit; `errors` says where, when known.",
    429: "A rate-limit budget (per client address or per owner; writes and reads apart) is"
    " spent. Retry-After says when to try again.",
    500: "An unexpected error; quote the `request_id` when reporting it.",
    503: "A backing service (NATS, Postgres, Redis or S3) is unavailable; retry after"
    " Retry-After seconds.",
}


def problems(
    *statuses: int, scope: str | None, notes: Mapping[int, str] | None = None
) -> dict[int, ResponseSpec]:
    """The problem responses of an operation, for its handler's `responses=`.

    `statuses` are the operation's own (404, 409, 413, 422...); 500 is always added, and
    401, 403, 429 and 503 too unless `scope` is None (a route outside authentication).
    `notes` refine a status's description for this operation.
    """
    wanted = set(statuses) | set(ALWAYS)
    if scope is not None:
        wanted |= set(AUTHENTICATED)
    texts = dict(DESCRIPTIONS)
    if scope is not None:
        texts[403] = f"The token lacks the `{scope}` scope."
    texts.update(notes or {})
    return {
        status: ResponseSpec(
            data_container=Problem,
            media_type=PROBLEM_MEDIA_TYPE,
            description=texts.get(status) or HTTPStatus(status).phrase,
            generate_examples=False,
        )
        for status in sorted(wanted)
    }


def _header(description: str, kind: OpenAPIType, *, required: bool) -> OpenAPIHeader:
    return OpenAPIHeader(description=description, required=required, schema=Schema(type=kind))


_REQUEST_ID = _header(
    "The request's id: the client's well-formed X-Request-ID, or a new one.",
    OpenAPIType.STRING,
    required=True,
)
_RETRY_AFTER = _header("Seconds to wait before trying again.", OpenAPIType.INTEGER, required=True)


def _rate_limit_headers(*, required: bool) -> dict[str, OpenAPIHeader | Reference]:
    """The tightest budget's state (IETF draft `RateLimit` header fields)."""
    return {
        "RateLimit-Limit": _header(
            "Requests the tightest budget allows per window.",
            OpenAPIType.INTEGER,
            required=required,
        ),
        "RateLimit-Remaining": _header(
            "Requests left in that budget's window.", OpenAPIType.INTEGER, required=required
        ),
        "RateLimit-Reset": _header(
            "Seconds until that budget allows a request again (0 while some remain).",
            OpenAPIType.INTEGER,
            required=required,
        ),
        "RateLimit-Policy": _header(
            "The budget: `limit;w=window-seconds`.", OpenAPIType.STRING, required=required
        ),
    }


IDEMPOTENCY_KEY = Parameter(
    name="Idempotency-Key",
    param_in="header",
    required=False,
    description="The same key and body from the same owner answer the first answer again"
    " (with `Idempotent-Replayed: true`); the same key with another body is 409.",
    schema=Schema(type=OpenAPIType.STRING, min_length=1, max_length=255),
)


@dataclass
class ProblemOperation(Operation):
    """An operation whose responses also document their headers (see the module doc)."""

    def __post_init__(self) -> None:
        responses = self.responses or {}
        bad_request = responses.get("400")
        if isinstance(bad_request, OpenAPIResponse) and PROBLEM_MEDIA_TYPE not in (
            bad_request.content or {}
        ):
            # Litestar's generated ValidationException shape: never sent (422 instead).
            del responses["400"]
        authenticated = "401" in responses
        idempotent = "409" in responses
        for status, response in responses.items():
            if not isinstance(response, OpenAPIResponse):
                continue
            headers: dict[str, OpenAPIHeader | Reference] = {"X-Request-ID": _REQUEST_ID}
            if authenticated:
                # Only while the limits are counted (a Redis outage serves unlimited).
                headers.update(_rate_limit_headers(required=False))
            if status == "401":
                headers["WWW-Authenticate"] = _header(
                    "The `Bearer` challenge.", OpenAPIType.STRING, required=True
                )
            elif status == "429":
                headers.update(_rate_limit_headers(required=True))
                headers["Retry-After"] = _RETRY_AFTER
            elif status == "503":
                headers["Retry-After"] = _RETRY_AFTER
            elif status.startswith("2") and idempotent:
                headers["Idempotent-Replayed"] = _header(
                    "`true` when this is the stored answer to an earlier request with the"
                    " same Idempotency-Key.",
                    OpenAPIType.STRING,
                    required=False,
                )
            response.headers = {**headers, **(response.headers or {})}
        if idempotent:
            self.parameters = [*(self.parameters or []), IDEMPOTENCY_KEY]
