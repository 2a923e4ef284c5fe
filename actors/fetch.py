"""Pull requests that bring what a consumer has now, and otherwise the first message
to come, at once.

nats.py's `fetch(n)` (and the first version of this module) waited for a batch to
fill: with nothing queued, its waiting request held the first message until `n`
had come or the deadline passed. Under a light load every actor then added up to
its fetch timeout (1 s) to each job. Here a waiting request asks for one message
only, so it ends when that one comes; a backlog still arrives in full batches,
through the no-wait request made first. No request is left open with room for
more messages than the caller asked for, which matters to acked consumers: a
message delivered into the subscription's queue and not taken would wait there,
unprotected by progress signals, while its ack wait ran.
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
    within `wait` seconds. Raises `TimeoutError` when nothing came.

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

    def take(msg: Msg) -> bool:
        """Keeps a message; False if it ends the current request."""
        queue.task_done()
        sub._pending_size -= len(msg.data)
        status = msg.headers.get(Header.STATUS) if msg.headers else None
        if status is None:
            msgs.append(msg)
            return True
        if status == StatusCode.CONTROL_MESSAGE:
            return True
        if status in _REQUEST_OVER:
            return False
        raise APIError.from_msg(msg)

    async def pull(request: dict[str, int | bool], want: int) -> None:
        """Sends `request` and takes its messages until it is over or `want` are kept."""
        await psub._nc.publish(psub._nms, msgspec.json.encode(request), reply=psub._deliver)
        while len(msgs) < want:
            if queue.empty():
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return
                try:
                    msg = await asyncio.wait_for(queue.get(), remaining)
                except TimeoutError:
                    return
            else:
                msg = queue.get_nowait()
            if not take(msg):
                return

    # What earlier requests left (their status messages are stale: skipped).
    while len(msgs) < batch and not queue.empty():
        take(queue.get_nowait())
    if len(msgs) < batch:
        await pull({"batch": batch - len(msgs), "max_bytes": max_bytes, "no_wait": True}, batch)
    if not msgs:
        remaining = deadline - loop.time()
        if remaining > 0.01:
            # One message, waited for on the server: the request ends when it comes.
            expires = int((remaining - 0.005) * 1e9)
            await pull({"batch": 1, "max_bytes": max_bytes, "expires": expires}, 1)
    if not msgs:
        raise TimeoutError
    return msgs
