"""Reading a stream's last message on a subject: by direct get, and through the API."""

from __future__ import annotations

import uuid

import pytest
from nats.aio.client import Client as NATS
from nats.errors import NoRespondersError
from nats.js.kv import KV_OP

from actors.inbox import Inbox
from gateway.streams import last_message, last_message_direct
from schemas import subjects


async def test_a_direct_get_answers_the_message_as_stored(nc: NATS) -> None:
    # The uploads bucket allows direct gets (ops.provision); a key of this test's own.
    kv = await nc.jetstream().key_value(subjects.UPLOADS_BUCKET)
    key = f"test-streams-{uuid.uuid4().hex}"
    subject = subjects.upload_record(key)
    inbox = Inbox(nc)
    await kv.create(key, b'{"a": 1}')
    found = await last_message_direct(inbox, subjects.UPLOADS_STREAM, subject)
    assert found is not None
    assert found.data == b'{"a": 1}'
    assert found.headers is not None
    assert KV_OP not in found.headers
    # The leader's answer through the API is the same message.
    stored = await last_message(inbox, subjects.UPLOADS_STREAM, subject)
    assert stored is not None
    assert stored.data == found.data
    assert int(found.headers["Nats-Sequence"]) == stored.seq

    await kv.delete(key)
    marker = await last_message_direct(inbox, subjects.UPLOADS_STREAM, subject)
    assert marker is not None
    assert marker.headers is not None
    assert (marker.data, marker.headers[KV_OP]) == (b"", "DEL")

    missing = subjects.upload_record(f"test-streams-{uuid.uuid4().hex}")
    assert await last_message_direct(inbox, subjects.UPLOADS_STREAM, missing) is None


async def test_a_stream_without_direct_gets_has_no_responders(nc: NATS, bucket: str) -> None:
    # A bucket made as nats-py makes one by default: no replica answers direct gets.
    kv = await nc.jetstream().key_value(bucket)
    await kv.put("k", b"v")
    stream = f"{subjects.KV_STREAM_PREFIX}{bucket}"
    with pytest.raises(NoRespondersError):
        await last_message_direct(Inbox(nc), stream, f"{subjects.KV_PREFIX}.{bucket}.k")
