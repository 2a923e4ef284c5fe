"""The ceiling of the gateway's writes: a bare nats-py process publishing the
`uploaded` event of `complete` (same subject, headers and payload size) to JetStream
and awaiting each ack, as fast as it can.

`python -m ops.bench.ceiling --mode sync|async` (settings from CONVEYOR_*): `sync`
awaits each ack before the next publish (what one request does); `async` keeps up to
`--in-flight` publishes unacknowledged (`publish_async`). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid

import msgspec
from nats.js import JetStreamContext
from nats.js.api import PubAck

from actors.publisher import event_headers
from ops.bench.servers import own_cpu_seconds
from ops.connections import nats_connection
from ops.logs import configure_logging
from schemas import subjects
from schemas.events import Uploaded, new_event
from schemas.settings import Settings

encoder = msgspec.json.Encoder()


class CeilingFigures(msgspec.Struct, kw_only=True):
    mode: str
    in_flight: int
    count: int
    seconds: float
    latencies: list[float]
    """sync: each publish-to-ack; async: empty."""
    cpu_seconds: float
    payload_bytes: int


def complete_message() -> tuple[str, bytes, dict[str, str]]:
    """What `complete` publishes for one upload: subject, payload, headers."""
    upload_id, job_id = uuid.uuid4(), uuid.uuid4()
    event = new_event(
        Uploaded(
            upload_id=upload_id,
            filename="data.csv",
            content_type="text/csv",
            size=1024,
            key=f"uploads/bench-owner/{upload_id}",
        ),
        job_id=job_id,
        owner="bench-owner",
        source="gateway",
        correlation_id=uuid.uuid4().hex,
    )
    headers = event_headers(event, first_of_type=True)  # as `complete` sends it
    return subjects.job_event(job_id, "uploaded"), encoder.encode(event), headers


async def _run(
    settings: Settings, mode: str, in_flight: int, duration: float, warmup: float
) -> CeilingFigures:
    # The gateway's NATS user, as `complete` publishes.
    async with nats_connection(settings, name="bench-ceiling", user="gateway") as nc:
        js = nc.jetstream(publish_async_max_pending=max(1, in_flight))
        return await _publish(js, mode, in_flight, duration, warmup)


async def _publish(
    js: JetStreamContext, mode: str, in_flight: int, duration: float, warmup: float
) -> CeilingFigures:
    latencies: list[float] = []
    size = len(complete_message()[1])
    count = 0
    start = time.perf_counter()
    measure_from, stop_at = start + warmup, start + warmup + duration
    cpu_from = 0.0
    measuring = False
    if mode == "sync":
        while (now := time.perf_counter()) < stop_at:
            if not measuring and now >= measure_from:
                measuring, cpu_from = True, own_cpu_seconds()
            subject, payload, headers = complete_message()
            await js.publish(subject, payload, headers=headers)
            if measuring:
                latencies.append(time.perf_counter() - now)
        count = len(latencies)
        cpu_to = own_cpu_seconds()
    else:
        counted = 0

        def acked(future: asyncio.Future[PubAck]) -> None:
            nonlocal counted
            ok = not future.cancelled() and future.exception() is None
            if ok and measuring and time.perf_counter() <= stop_at:
                counted += 1

        while (now := time.perf_counter()) < stop_at:
            if not measuring and now >= measure_from:
                measuring, cpu_from = True, own_cpu_seconds()
            subject, payload, headers = complete_message()
            # Waits while `in_flight` acks are outstanding.
            future = await js.publish_async(subject, payload, headers=headers)
            future.add_done_callback(acked)
        # The window ends here: the acks still to come are not counted, nor their CPU.
        cpu_to = own_cpu_seconds()
        await js.publish_async_completed()
        count = counted
    cpu = cpu_to - cpu_from
    return CeilingFigures(
        mode=mode,
        in_flight=1 if mode == "sync" else in_flight,
        count=count,
        seconds=duration,
        latencies=latencies,
        cpu_seconds=round(cpu, 3),
        payload_bytes=size,
    )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m ops.bench.ceiling")
    p.add_argument("--mode", choices=["sync", "async"], required=True)
    p.add_argument("--in-flight", type=int, default=256)
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--warmup", type=float, default=2.0)
    args = p.parse_args(argv)
    settings = Settings.from_env(os.environ)
    # The figures go to stdout: the connection's log lines (if any) to stderr.
    configure_logging(settings)
    import uvloop

    figures = uvloop.run(_run(settings, args.mode, args.in_flight, args.duration, args.warmup))
    sys.stdout.buffer.write(msgspec.json.encode(figures) + b"\n")


if __name__ == "__main__":
    main()
