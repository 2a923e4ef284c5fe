"""Requests over one shared inbox, against the real NATS server: each reply reaches
its own request, and the errors are nats-py's own."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from nats.aio.client import Client as NATS
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.errors import NoStreamResponseError

from actors.inbox import Inbox
from actors.publisher import publish_acked


async def test_each_reply_reaches_its_own_request(nc: NATS, bucket: str) -> None:
    inbox = Inbox(nc)
    keys = [f"k{i}" for i in range(40)]
    acks = await asyncio.gather(
        *(
            publish_acked(inbox, f"$KV.{bucket}.{key}", key.encode(), headers={}, ack_wait=5.0)
            for key in keys
        )
    )
    assert len({ack.seq for ack in acks}) == len(keys)
    kv = await nc.jetstream().key_value(bucket)
    for key, ack in zip(keys, acks, strict=True):
        entry = await kv.get(key)
        # The sequence each publish was answered is the one its own value was stored at.
        assert (entry.revision, entry.value) == (ack.seq, key.encode())


async def test_no_stream_is_no_responders(nc: NATS) -> None:
    inbox = Inbox(nc)
    subject = f"$KV.no-such-bucket-{uuid.uuid4().hex[:12]}.k"
    with pytest.raises(NoRespondersError):
        await inbox.request(subject, b"x", wait=5.0)
    with pytest.raises(NoStreamResponseError):
        await publish_acked(inbox, subject, b"x", headers={}, ack_wait=5.0)


async def test_a_reply_after_the_wait_is_a_timeout_and_harms_nothing(nc: NATS, bucket: str) -> None:
    inbox = Inbox(nc)
    # The reply needs a round trip to the server; the wait is over long before.
    with pytest.raises(NatsTimeoutError):
        await inbox.request(f"$KV.{bucket}.late", b"late", wait=1e-6)
    kv = await nc.jetstream().key_value(bucket)
    # The late reply (the value was stored) is dropped; the next request is answered.
    assert (await kv.get("late")).value == b"late"
    ack = await publish_acked(inbox, f"$KV.{bucket}.next", b"next", headers={}, ack_wait=5.0)
    assert ack.seq == 2
