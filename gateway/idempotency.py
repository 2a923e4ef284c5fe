"""`Idempotency-Key` on POST routes: the same key and body from the same owner gets
the first answer again; the same key with another body is 409.

Answers are kept in a JetStream KV bucket (durable, shared by every gateway
process, expiring after a day), never only in Redis: losing one could make a
second job. A key is reserved before the request runs, so two concurrent
requests with one key can not both run: the second gets 409 until the first is done.
"""

from __future__ import annotations

import base64
import hashlib
import time
from typing import Any

import msgspec
import structlog
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from gateway.errors import NATS_UNREACHABLE, Conflict, PayloadTooLarge, Unprocessable

log = structlog.get_logger("gateway.idempotency")

HEADER = b"idempotency-key"
REPLAYED = b"idempotent-replayed"
_MAX_KEY = 255
# A reservation older than this without an answer belongs to a gateway that died.
ABANDONED_AFTER = 60.0


class Remembered(msgspec.Struct, frozen=True, kw_only=True):
    """What the bucket keeps per key: the request's digest and, once done, the answer."""

    request: str
    status: int = 0  # 0 while the first request runs
    reserved_at: float = 0.0  # unix time of the reservation
    headers: list[tuple[str, str]] = []
    body: str = ""  # base64


class IdempotencyMiddleware(ASGIMiddleware):
    """Answers a repeated Idempotency-Key from the bucket. On the write routes only,
    behind their scope check (see `gateway.app.create_app`)."""

    def __init__(self, bucket: KeyValue, *, max_body: int) -> None:
        self._kv = bucket
        self._max_body = max_body
        self._decoder = msgspec.json.Decoder(Remembered)

    def __deepcopy__(self, memo: dict[int, Any]) -> IdempotencyMiddleware:
        # Litestar deep-copies a Router, middleware included, as it registers it; the
        # bucket's NATS client can not be copied, and nothing here is per router.
        return self

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        if scope["type"] != ScopeType.HTTP or scope.get("method") != "POST":
            await next_app(scope, receive, send)
            return
        raw_key = next((v for k, v in scope.get("headers", []) if k == HEADER), None)
        if raw_key is None:
            await next_app(scope, receive, send)
            return
        if not 1 <= len(raw_key) <= _MAX_KEY:
            raise Unprocessable(f"Idempotency-Key must be 1 to {_MAX_KEY} characters")
        body, replay_body = await _read_body(receive, self._max_body)
        owner = str(scope.get("user", ""))
        slot = slot_for(owner, scope["path"], raw_key)
        digest = hashlib.sha256(body).hexdigest()

        try:
            entry = await self._kv.get(slot)
        except KeyNotFoundError:
            entry = None
        reservation = msgspec.json.encode(Remembered(request=digest, reserved_at=time.time()))
        try:
            if entry is None:
                revision = await self._kv.create(slot, reservation)
            else:
                first = self._decoder.decode(entry.value or b"")
                if _abandoned(first) and entry.revision is not None:
                    # Its gateway died mid-request: the key is free again.
                    revision = await self._kv.update(slot, reservation, last=entry.revision)
                else:
                    await _answer_again(first, digest, send)
                    return
        except KeyWrongLastSequenceError:
            raise Conflict("a request with this Idempotency-Key is in progress") from None

        status = 0
        headers: list[tuple[bytes, bytes]] = []
        chunks: list[bytes] = []

        held: list[Message] = []

        async def capture(message: Message) -> None:
            # Held back until the outcome is recorded: a client retrying the moment
            # it has an answer must find the key settled, not "in progress".
            nonlocal status, headers
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = list(message.get("headers", []))
            elif message["type"] == "http.response.body":
                chunks.append(bytes(message.get("body", b"")))
            held.append(message)

        try:
            await next_app(scope, replay_body, capture)
        finally:
            await self._settle(slot, revision, digest, status, headers, b"".join(chunks))
        for message in held:
            await send(message)

    async def _settle(
        self,
        slot: str,
        revision: int,
        digest: str,
        status: int,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
    ) -> None:
        """Record a success's answer under the key, or free the key after anything else."""
        try:
            if 200 <= status < 300:
                done = Remembered(
                    request=digest,
                    status=status,
                    headers=[
                        (k.decode("latin-1"), v.decode("latin-1"))
                        for k, v in headers
                        if k.lower() in (b"content-type", b"location")
                    ],
                    body=base64.b64encode(body).decode(),
                )
                await self._kv.update(slot, msgspec.json.encode(done), last=revision)
            else:
                # Not a success: nothing to remember; the client may try again.
                await self._kv.delete(slot, last=revision)
        except NATS_UNREACHABLE as exc:
            # NATS went away while the request ran. Its effect is stored (or not) all the
            # same, and the client must still get its answer, not a 500 in its place.
            # The reservation stays: a retry with this key is 409 until it counts as
            # abandoned, then runs again.
            log.warning("idempotency outcome not recorded", status=status, error=type(exc).__name__)


def _abandoned(first: Remembered) -> bool:
    return not first.status and time.time() - first.reserved_at > ABANDONED_AFTER


async def _answer_again(first: Remembered, digest: str, send: Send) -> None:
    if first.request != digest:
        raise Conflict("this Idempotency-Key was used with a different request")
    if not first.status:
        raise Conflict("a request with this Idempotency-Key is in progress")
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in first.headers]
    start: Any = {
        "type": "http.response.start",
        "status": first.status,
        "headers": [*headers, (REPLAYED, b"true")],
    }
    body: Any = {"type": "http.response.body", "body": base64.b64decode(first.body)}
    await send(start)
    await send(body)


def slot_for(owner: str, path: str, key: bytes) -> str:
    """The bucket key of an Idempotency-Key: scoped to the owner and the route, so one
    owner's keys never collide with another's, and within KV's character set."""
    return hashlib.sha256(b"\0".join([owner.encode(), path.encode(), key])).hexdigest()


async def _read_body(receive: Receive, limit: int) -> tuple[bytes, Receive]:
    """The whole request body, and a `receive` that hands it to the app again.

    Read before Litestar's own size check, so the limit is enforced here as well:
    a body over it is refused as it arrives, never held whole.
    """
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        parts.append(bytes(message.get("body", b"")))
        size += len(parts[-1])
        if size > limit:
            raise PayloadTooLarge(f"the request body is over {limit} bytes")
        if not message.get("more_body", False):
            break
    body = b"".join(parts)
    sent = False

    async def again() -> Any:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return body, again
