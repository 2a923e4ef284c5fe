"""A closed-loop HTTP/1.1 load generator, run as a process of its own.

`python -m ops.bench.loadgen --port P --mode create|complete|baseline|floor|read ...` keeps
`--concurrency` keep-alive connections each sending one request after the other,
measures for `--duration` seconds after `--warmup`, and prints one JSON line: the
count, the latencies (seconds), the statuses, and the CPU seconds this process used,
so a report can show it was not the bottleneck (or to `--out`). `spawn` runs it from
a suite.

Requests are pre-built bytes on raw asyncio protocols (uvloop): no HTTP library
between the socket and the clock.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any, cast

import msgspec

from ops.bench.servers import own_cpu_seconds, process_cpu_seconds
from ops.stack import die_with_parent

CREATE_BODY = msgspec.json.encode(
    {"filename": "data.csv", "content_type": "text/csv", "size": 1024}
)
FLOOR_PATH = "/v1/uploads/0b7e5d1c-5f4e-4c37-9d0a-2f6c8a1e3b90/complete"


def _request(method: str, path: str, host: str, token: str, body: bytes) -> bytes:
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class _Connection(asyncio.Protocol):
    """One keep-alive connection; `send` answers (status, body) of one request."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self._transport: asyncio.Transport | None = None
        self.lost: BaseException | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast("asyncio.Transport", transport)  # uvloop's is no subclass

    def connection_lost(self, exc: BaseException | None) -> None:
        self.lost = exc or ConnectionError("closed by the server")
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(self.lost)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0 or self._waiter is None:
            return
        head = bytes(self._buffer[:end]).lower()
        at = head.find(b"\r\ncontent-length:")
        if at < 0:
            self._waiter.set_exception(ValueError("no content-length in the answer"))
            return
        line_end = head.find(b"\r\n", at + 2)
        length = int(head[at + 17 : line_end if line_end > 0 else len(head)])
        total = end + 4 + length
        if len(self._buffer) < total:
            return
        status = int(head[9:12])
        body = bytes(self._buffer[end + 4 : total])
        del self._buffer[:total]
        waiter, self._waiter = self._waiter, None
        waiter.set_result((status, body))

    async def send(self, request: bytes) -> tuple[int, bytes]:
        if self.lost is not None:
            raise self.lost
        assert self._transport is not None
        self._waiter = asyncio.get_running_loop().create_future()
        self._transport.write(request)
        return await self._waiter

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


class Figures(msgspec.Struct, kw_only=True):
    count: int
    """Answers with the expected status, inside the measured window."""
    errors: int
    statuses: dict[str, int]
    seconds: float
    latencies: list[float]
    cpu_seconds: float
    """User + system CPU of this process over the measured window."""
    server_cpu_seconds: float = 0.0
    """CPU of the `--server-pid` process (its threads, not its children), same window."""


async def _run(args: argparse.Namespace, ids: list[str], created: list[str]) -> Figures:
    loop = asyncio.get_running_loop()
    host = f"{args.host}:{args.port}"
    expected = {"create": 201, "complete": 202, "baseline": 202, "floor": 202, "read": 200}[
        args.mode
    ]
    # read: GET each job in turn, round and round.
    reads = [_request("GET", f"/v1/jobs/{i}", host, args.token, b"") for i in ids]
    turn = 0
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    errors = 0
    create_request = _request("POST", "/v1/uploads", host, args.token, CREATE_BODY)
    # floor: the path of a `complete`; the floor app looks nothing up.
    floor_request = _request("POST", FLOOR_PATH, host, args.token, b"")
    decoder = msgspec.json.Decoder(dict[str, Any])

    connections = []
    for _ in range(args.concurrency):
        _, conn = await loop.create_connection(_Connection, args.host, args.port)
        connections.append(conn)

    start = time.perf_counter()
    measure_from = start + args.warmup
    stop_at = measure_from + args.duration
    cpu_from = server_from = 0.0
    cpu_to = server_to = 0.0
    measuring = False

    def window_closed() -> None:
        nonlocal cpu_to, server_to
        if cpu_to:
            return
        cpu_to = own_cpu_seconds()
        if args.server_pid:
            server_to = process_cpu_seconds(args.server_pid)

    async def worker(conn: _Connection) -> None:
        nonlocal errors, cpu_from, server_from, measuring, turn
        while True:
            if args.mode == "read":
                request = reads[turn % len(reads)]
                turn += 1
            elif args.mode == "complete":
                if not ids:
                    return
                request = _request(
                    "POST", f"/v1/uploads/{ids.pop()}/complete", host, args.token, b""
                )
            elif args.mode == "floor":
                request = floor_request
            else:
                request = create_request
            sent = time.perf_counter()
            if sent >= stop_at:
                return
            if not measuring and sent >= measure_from:
                measuring = True
                if args.server_pid:
                    server_from = process_cpu_seconds(args.server_pid)
                cpu_from = own_cpu_seconds()
                # Both read again when the window closes, not once the last answers
                # (which may come after it) are in.
                loop.call_later(stop_at - time.perf_counter(), window_closed)
            try:
                status, body = await conn.send(request)
            except (OSError, ValueError) as exc:
                print(f"loadgen: {exc!r}", file=sys.stderr)
                errors += 1
                return
            done = time.perf_counter()
            if args.mode == "create" and status == 201:
                created.append(decoder.decode(body)["upload_id"])
            if sent >= measure_from and done <= stop_at:
                statuses[status] += 1
                if status == expected:
                    latencies.append(done - sent)
                else:
                    errors += 1

    await asyncio.gather(*(worker(c) for c in connections))
    ended = min(time.perf_counter(), stop_at)
    if measuring:
        window_closed()  # at once if every worker ended (out of ids) before the window did
    cpu = cpu_to - cpu_from if measuring else 0.0
    server_cpu = server_to - server_from if measuring and args.server_pid else 0.0
    for conn in connections:
        conn.close()
    seconds = max(0.0, ended - measure_from)
    return Figures(
        count=len(latencies),
        errors=errors,
        statuses={str(k): v for k, v in statuses.items()},
        seconds=round(seconds, 4),
        latencies=latencies,
        cpu_seconds=round(cpu, 3),
        server_cpu_seconds=round(server_cpu, 3),
    )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m ops.bench.loadgen")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument(
        "--mode", choices=["create", "complete", "baseline", "floor", "read"], required=True
    )
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--token", default=os.environ.get("BENCH_TOKEN", ""))
    p.add_argument(
        "--ids-in", help="complete: upload ids to complete; read: job ids to read; one a line"
    )
    p.add_argument("--ids-out", help="create: append the created upload ids here")
    p.add_argument("--out", help="write the figures here rather than to stdout")
    p.add_argument(
        "--server-pid", type=int, default=0, help="measure this process's CPU over the window"
    )
    args = p.parse_args(argv)
    ids: list[str] = []
    if args.mode in ("complete", "read"):
        ids = Path(args.ids_in).read_text().split()
        ids.reverse()  # pop() from the end takes them in file order
    created: list[str] = []
    import uvloop

    figures = uvloop.run(_run(args, ids, created))
    if args.ids_out:
        with open(args.ids_out, "a") as out:
            out.write("".join(f"{i}\n" for i in created))
    encoded = msgspec.json.encode(figures) + b"\n"
    if args.out:
        Path(args.out).write_bytes(encoded)
    else:
        sys.stdout.buffer.write(encoded)
        sys.stdout.buffer.flush()


def _figures_file(i: int) -> Path:
    """Where load generator `i` leaves its figures: a file, since the latencies of a
    long run make more output than is comfortable to pipe."""
    return Path(tempfile.gettempdir()) / f"conveyor-loadgen-{os.getpid()}-{i}.json"


def spawn(
    port: int,
    mode: str,
    concurrency: int,
    *,
    token: str,
    duration: float,
    warmup: float,
    processes: int = 1,
    ids_in: list[Path] | None = None,
    ids_out: Path | None = None,
    server_pid: int = 0,
) -> Figures:
    """Runs the load generator as up to `processes` processes sharing `concurrency`
    connections, until they end; their figures merged. `ids_in`: one file per process;
    `ids_out`: where the created upload ids are appended; `server_pid`: the server
    whose CPU over the measured window the first process reports."""
    processes = max(1, min(processes, concurrency))
    shares = [concurrency // processes + (i < concurrency % processes) for i in range(processes)]
    # The token by the environment: kept out of the process list.
    env = {**os.environ, "BENCH_TOKEN": token}
    procs: list[subprocess.Popen[bytes]] = []
    merged = Figures(count=0, errors=0, statuses={}, seconds=0.0, latencies=[], cpu_seconds=0.0)
    try:
        for i, share in enumerate(shares):
            argv = [
                sys.executable, "-m", "ops.bench.loadgen", "--port", str(port), "--mode", mode,
                "--concurrency", str(share), "--duration", str(duration), "--warmup", str(warmup),
            ]  # fmt: skip
            if ids_in is not None:
                argv += ["--ids-in", str(ids_in[i])]
            if ids_out is not None:
                argv += ["--ids-out", f"{ids_out}.{i}"]
            argv += ["--out", str(_figures_file(i))]
            if i == 0 and server_pid:
                argv += ["--server-pid", str(server_pid)]
            procs.append(
                subprocess.Popen(argv, stderr=subprocess.PIPE, env=env, preexec_fn=die_with_parent)
            )
        for i, proc in enumerate(procs):
            _, err = proc.communicate()
            if proc.returncode:
                raise RuntimeError(
                    f"load generator {proc.args!r} exited {proc.returncode}: {err.decode()[-2000:]}"
                )
            figures = msgspec.json.decode(_figures_file(i).read_bytes(), type=Figures)
            merged.count += figures.count
            merged.errors += figures.errors
            for k, v in figures.statuses.items():
                merged.statuses[k] = merged.statuses.get(k, 0) + v
            # The processes run side by side: the longest one is the window.
            merged.seconds = max(merged.seconds, figures.seconds)
            merged.latencies += figures.latencies
            merged.cpu_seconds += figures.cpu_seconds
            merged.server_cpu_seconds += figures.server_cpu_seconds
    finally:
        # One failed (or the bench was interrupted): the others would go on loading
        # the server for the rest of their duration, into the next measurement.
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            if proc.stderr is not None:
                proc.stderr.close()  # idempotent: `communicate` closed it if it ran
        for i in range(len(procs)):
            _figures_file(i).unlink(missing_ok=True)
    if ids_out is not None:
        with ids_out.open("a") as pool:
            for i in range(processes):
                part = Path(f"{ids_out}.{i}")
                if part.exists():
                    pool.write(part.read_text())
                    part.unlink()
    return merged


if __name__ == "__main__":
    main()
