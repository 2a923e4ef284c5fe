"""Processes a benchmark starts (Conveyor's, the baselines'), and the CPU they use."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

from ops.stack import die_with_parent
from schemas.settings import Settings, env_name


def settings_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment of a Conveyor process given exactly `settings` (JSON logs)."""
    # The benchmark is an entry point too: it hands its own environment down.
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    for name in settings.__struct_fields__:
        env[env_name(name)] = str(getattr(settings, name))
    env["CONVEYOR_LOG_FORMAT"] = "json"
    env.update(extra)
    return env


def wait_http(
    url: str,
    proc: subprocess.Popen[bytes],
    log: Path,
    timeout: float = 60,
    *,
    any_status: bool = False,
) -> None:
    """Until `url` answers 200 (any HTTP status, with `any_status`); fails with the log's
    tail when the process exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"{proc.args!r} exited {proc.returncode}:\n{log.read_text()[-3000:]}"
            )
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200 or any_status:
                    return
        except urllib.error.HTTPError:
            # An error status is still an answer: the process serves.
            if any_status:
                return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} not ready in {timeout}s:\n{log.read_text()[-3000:]}")


@contextmanager
def server(
    argv: list[str],
    env: dict[str, str],
    log: Path,
    probe: str | None = None,
    *,
    any_status: bool = False,
) -> Iterator[subprocess.Popen[bytes]]:
    """A process (ready once `probe` answers, see `wait_http`, if given); SIGTERM, then
    SIGKILL, after."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            argv, env=env, stdout=out, stderr=subprocess.STDOUT, preexec_fn=die_with_parent
        )
    try:
        if probe is not None:
            wait_http(probe, proc, log, any_status=any_status)
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class ProcessStat(NamedTuple):
    name: str
    """The command name (`comm`, at most 15 characters)."""
    parent: int
    cpu_seconds: float
    """User + system, so far."""
    reaped_cpu_seconds: float = 0.0
    """User + system of its children that have exited and been waited for."""

    @property
    def with_reaped(self) -> float:
        """Its own CPU seconds and those of its children waited for."""
        return self.cpu_seconds + self.reaped_cpu_seconds


def _read_stat(stat: Path, tick: int) -> ProcessStat:
    # The name may hold spaces and parentheses: it ends at the last ")".
    head, _, rest = stat.read_text().rpartition(")")
    fields = rest.split()
    # After the name: state, ppid, ... utime, stime, cutime, cstime (12th to 15th).
    return ProcessStat(
        name=head.partition("(")[2],
        parent=int(fields[1]),
        cpu_seconds=(int(fields[11]) + int(fields[12])) / tick,
        reaped_cpu_seconds=(int(fields[13]) + int(fields[14])) / tick,
    )


def process_stats() -> dict[int, ProcessStat]:
    """Every process alive now, by pid, from `/proc/<pid>/stat`."""
    tick = os.sysconf("SC_CLK_TCK")
    stats: dict[int, ProcessStat] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            stats[int(stat.parent.name)] = _read_stat(stat, tick)
        except (OSError, ValueError, IndexError):
            # Gone between the listing and the read.
            continue
    return stats


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process `pid` (its threads, not its children)."""
    return _read_stat(Path(f"/proc/{pid}/stat"), os.sysconf("SC_CLK_TCK")).cpu_seconds


def _trees(stats: dict[int, ProcessStat]) -> Callable[[int], dict[int, ProcessStat]]:
    """For one reading of `process_stats`: a root's process and its descendants alive
    then, by pid (the parent map built once for every root asked about)."""
    children: dict[int, list[int]] = {}
    for pid, stat in stats.items():
        children.setdefault(stat.parent, []).append(pid)

    def tree(root: int) -> dict[int, ProcessStat]:
        found, todo = {}, [root]
        while todo:
            pid = todo.pop()
            if pid in stats:
                found[pid] = stats[pid]
            todo += children.get(pid, [])
        return found

    return tree


def tree_cpu_seconds(roots: dict[str, int], stats: dict[int, ProcessStat]) -> dict[str, float]:
    """User + system CPU seconds so far of each root process with its descendants (those
    alive, and those exited and waited for), by the roots' names."""
    tree = _trees(stats)
    return {name: sum(s.with_reaped for s in tree(root).values()) for name, root in roots.items()}


def cpu_by_name(
    root: int,
    label: str,
    before: dict[int, ProcessStat],
    after: dict[int, ProcessStat],
    *,
    leave_out: Iterable[int] = (),
) -> dict[str, float]:
    """CPU seconds that `root` (as `label`) and its descendants used between two
    readings of `process_stats`, summed by command name: a server's backends and
    workers count as one. Each reading counts a process with its children that exited
    and were waited for, so one that ended in between still counts (as its parent's
    name: a Postgres backend under `postgres`), and no pid is matched across readings.
    The trees of `leave_out` are not counted (they are measured on their own)."""

    others = tuple(leave_out)  # used for both readings: an iterator would be spent by one

    def totals(stats: dict[int, ProcessStat]) -> dict[str, float]:
        tree = _trees(stats)
        skipped = {pid for other in others for pid in tree(other)}
        used: dict[str, float] = {}
        for pid, stat in tree(root).items():
            if pid not in skipped:
                name = label if pid == root else stat.name
                used[name] = used.get(name, 0.0) + stat.with_reaped
        return used

    was, now = totals(before), totals(after)
    return {name: now.get(name, 0.0) - was.get(name, 0.0) for name in now.keys() | was.keys()}


def cpu_us_per_event(
    before: dict[int, ProcessStat], after: dict[int, ProcessStat], label: str, events: int
) -> dict[str, float]:
    """`cpu_by_name` of this process (as `label`) and what it started, in µs per event,
    the busiest first."""
    used = cpu_by_name(os.getpid(), label, before, after)
    return {
        name: round(1e6 * seconds / events, 1)
        for name, seconds in sorted(used.items(), key=lambda item: -item[1])
        if seconds > 0
    }


def cpu_line(per_event: dict[str, float]) -> str:
    """`cpu_us_per_event` as one line: `name µs, name µs`."""
    return ", ".join(f"{name} {us:,.1f}" for name, us in per_event.items())


def own_cpu_seconds() -> float:
    """User + system CPU seconds of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
