"""Errors of the gateway, each rendered as an RFC 9457 problem document.

HTTPException (litestar)
└── ProblemError              carries `status`, `title`, `detail`, extra headers
    ├── NotFound              404: no such resource for this owner (also another owner's)
    ├── PayloadTooLarge       413: declared size above CONVEYOR_MAX_UPLOAD_BYTES
    ├── Conflict              409: an Idempotency-Key reused for another request
    ├── Unprocessable         422: well-formed JSON that does not fit
    ├── TooManyRequests       429: a rate-limit budget is spent; has Retry-After
    └── Unavailable           503: a server the write path needs is down; has Retry-After
"""

from __future__ import annotations

from litestar.exceptions import HTTPException
from nats.errors import ConnectionClosedError, NoRespondersError, OutboundBufferLimitError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.errors import NoStreamResponseError

NATS_UNREACHABLE = (
    NatsTimeoutError,
    NoRespondersError,
    ConnectionClosedError,
    OutboundBufferLimitError,
    # A JetStream publish nobody answered.
    NoStreamResponseError,
)
"""What a NATS request raises when the server or the stream behind it does not answer."""


class ProblemError(HTTPException):
    title = "Error"

    def __init__(self, detail: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail=detail, status_code=self.status_code, headers=headers)


class NotFound(ProblemError):
    status_code = 404
    title = "Not Found"


class PayloadTooLarge(ProblemError):
    status_code = 413
    title = "Payload Too Large"


class Conflict(ProblemError):
    status_code = 409
    title = "Conflict"


class Unprocessable(ProblemError):
    status_code = 422
    title = "Unprocessable Content"


class TooManyRequests(ProblemError):
    status_code = 429
    title = "Too Many Requests"


class Unavailable(ProblemError):
    status_code = 503
    title = "Service Unavailable"

    def __init__(self, detail: str, *, retry_after: int = 2) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)})
        self.retry_after = retry_after
