"""Reading a stream without acks, a batch at a time: what the consumer has now, or
else the first messages to come, at once.

For the ordered readers (persistence, replay). Each fetch sends one pull request
marked both `no_wait` and `expires`: nats-server (2.15, checked) answers it
with what the consumer has, up to the batch, and when it has nothing, waits for
the first message and returns with what is there then. The first version of this
code (in `actors.ordered`) waited for messages with a request for a whole batch,
which kept the first message back until the batch was full or the fetch timeout
(1 s) passed: under a light load every event reached Postgres up to a second late.
The acked actors use nats.py's `fetch`, which sends the same kind of request.
"""

from __future__ import annotations

import asyncio

import msgspec
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import Header, StatusCode
from nats.js.errors import APIError

# At most about this many bytes per fetch, however large the events are (a profile
# result can be): what a reader holds at once stays bounded.
BATCH_BYTES = 8 * 1024 * 1024
# No messages (for a no-wait request), request expired, conflict: this request is over.
_REQUEST_OVER = frozenset({StatusCode.NO_MESSAGES, StatusCode.REQUEST_TIMEOUT, StatusCode.CONFLICT})


async def fetch_batch(
    psub: JetStreamContext.PullSubscription,
    batch: int,
    wait: float,
    *,
    max_bytes: int = BATCH_BYTES,
) -> list[Msg]:
    """Up to `batch` messages: those the consumer has now, or else the first to come
    within `wait` seconds (with any that came at once). Raises `TimeoutError` when
    nothing came.

    Messages are taken off the subscription's queue as they are (nats.py's fetch
    awaits every message with a timer of its own, a task each). Messages arrive on
    one inbox in consumer order, including any an earlier, expired request still
    delivered, so order holds. No more bytes than `max_bytes` allows (raised to
    twice the server's largest message: one the server could not fit would stall).
    """
    sub = psub._sub
    queue = sub._pending_queue
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    max_bytes = max(max_bytes, 2 * psub._nc.max_payload)
    msgs: list[Msg] = []

    def take(msg: Msg, *, stale: bool = False) -> bool:
        """Keeps a message; False if it ends the current request. A `stale` status,
        left by an earlier request, is skipped whatever it says."""
        queue.task_done()
        sub._pending_size -= len(msg.data)
        status = msg.headers.get(Header.STATUS) if msg.headers else None
        if status is None:
            msgs.append(msg)
            return True
        if stale or status == StatusCode.CONTROL_MESSAGE:
            return True
        if status in _REQUEST_OVER:
            return False
        raise APIError.from_msg(msg)

    # What earlier requests left.
    while len(msgs) < batch and not queue.empty():
        take(queue.get_nowait(), stale=True)
    if len(msgs) == batch:
        return msgs
    # Expires a little before our own deadline, so its 408 is seen by this fetch.
    expires = max(int((deadline - loop.time() - 0.005) * 1e9), 1_000_000)
    request = {
        "batch": batch - len(msgs), "max_bytes": max_bytes, "no_wait": True, "expires": expires
    }  # fmt: skip
    await psub._nc.publish(psub._nms, msgspec.json.encode(request), reply=psub._deliver)
    # Its messages, until it is over or the batch is full.
    while len(msgs) < batch:
        if queue.empty():
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                msg = await asyncio.wait_for(queue.get(), remaining)
            except TimeoutError:
                break
        else:
            msg = queue.get_nowait()
        if not take(msg):
            break
    if not msgs:
        raise TimeoutError
    return msgs
