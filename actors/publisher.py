"""Publishing job events to JetStream: `Nats-Msg-Id` set, the ack awaited, retried safely."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import structlog
from nats.errors import ConnectionClosedError, MaxPayloadError, NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import Header, PubAck
from nats.js.errors import APIError, NoStreamResponseError

from actors.errors import AlreadyStored, PermanentError, TransientError
from actors.inbox import Inbox
from schemas import subjects
from schemas.events import Envelope

log = structlog.get_logger("actors.publisher")

REQUEST_ID_HEADER = "Conveyor-Request-Id"
# JSStreamWrongLastSequenceErrF: an expected last subject sequence did not hold.
_WRONG_LAST_SEQUENCE = 10071


class _Ack(msgspec.Struct):
    stream: str = ""
    seq: int = 0
    domain: str | None = None
    duplicate: bool | None = None
    error: dict[str, Any] | None = None


_ack_decoder = msgspec.json.Decoder(_Ack)


async def publish_acked(
    inbox: Inbox, subject: str, payload: bytes, *, headers: dict[str, str], ack_wait: float
) -> PubAck:
    """`JetStreamContext.publish`, answered the same way (a `PubAck`, or its errors),
    with the ack decoded by msgspec: nats-py's `json.loads` and dataclass building
    were a visible share of a gateway write's CPU."""
    try:
        msg = await inbox.request(subject, payload, wait=ack_wait, headers=headers)
    except NoRespondersError:
        raise NoStreamResponseError from None
    ack = _ack_decoder.decode(msg.data)
    if ack.error is not None:
        APIError.from_error(ack.error)  # raises the error's own class
    return PubAck(stream=ack.stream, seq=ack.seq, domain=ack.domain, duplicate=ack.duplicate)


def event_headers(event: Envelope, *, first_of_type: bool = False) -> dict[str, str]:
    """The headers a stored job event carries. `first_of_type`: JOBS refuses the
    publish (JSStreamWrongLastSequenceErrF) if its job has a stored event of its type
    already: it stores `jobs.<job>.<type>.<partition>`, one subject per job and type.

    No `Nats-Expected-Stream`: JetStream stores every header sent, and every reader
    of every event (a replay reads millions) would parse that line too. It could
    only catch another stream holding `jobs.*.*`, and provisioning JOBS already
    fails then: streams of one account never share subjects.
    """
    headers = {
        subjects.MSG_ID_HEADER: str(event.id),
        REQUEST_ID_HEADER: event.correlation_id,
    }
    if first_of_type:
        headers[Header.EXPECTED_LAST_SUBJECT_SEQUENCE.value] = "0"
    return headers


class Publisher:
    """Stores events in the JOBS stream; a returned `PubAck` means the event is durable.

    A publish that times out is retried with the same `Nats-Msg-Id`: if the first
    attempt was in fact stored, the stream's duplicate window drops the second (or,
    for a `first_of_type` publish, JOBS refuses it: see `event_headers`).
    """

    def __init__(
        self,
        js: JetStreamContext,
        *,
        inbox: Inbox | None = None,
        timeout: float = 5.0,
        attempts: int = 3,
    ) -> None:
        # Publishes through the connection itself (see `publish_acked`); the gateway
        # hands in the inbox its other JetStream requests use.
        self._inbox = inbox or Inbox(js._nc)
        self._timeout = timeout
        self._attempts = attempts
        self._encoder = msgspec.json.Encoder()

    async def publish(self, event: Envelope, *, first_of_type: bool = False) -> PubAck:
        """Stores `event`. `first_of_type`: `AlreadyStored` if its job has an event of
        its type stored, also when an earlier try of this publish was (`event_headers`)."""
        subject = subjects.job_event(event.job_id, event.type)
        payload = self._encoder.encode(event)
        headers = event_headers(event, first_of_type=first_of_type)
        for attempt in range(1, self._attempts + 1):
            try:
                return await publish_acked(
                    self._inbox, subject, payload, headers=headers, ack_wait=self._timeout
                )
            except (NatsTimeoutError, NoStreamResponseError) as exc:
                log.warning("publish not acknowledged", subject=subject, attempt=attempt)
                if attempt == self._attempts:
                    raise TransientError(f"publish to {subject} not acknowledged") from exc
                await asyncio.sleep(0.2 * attempt)
            except APIError as exc:
                if first_of_type and exc.err_code == _WRONG_LAST_SEQUENCE:
                    raise AlreadyStored(subject) from None
                raise
            except ConnectionClosedError as exc:
                raise TransientError("NATS connection closed") from exc
            except MaxPayloadError as exc:
                # Retrying can never make it fit: the job fails with this reason.
                raise PermanentError(
                    f"{event.type} event is {len(payload)} bytes, over the server's message limit"
                ) from exc
        raise AssertionError("unreachable")
