"""Processes a benchmark starts (Conveyor's, the baselines'), and the CPU they use."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ops.stack import _die_with_parent
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


def wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    """Until `url` answers 200; fails with the log's tail when the process exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"{proc.args!r} exited {proc.returncode}:\n{log.read_text()[-3000:]}"
            )
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} not ready in {timeout}s:\n{log.read_text()[-3000:]}")


@contextmanager
def server(
    argv: list[str], env: dict[str, str], log: Path, probe: str | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """A process (ready once `probe` answers 200, if given); SIGTERM, then SIGKILL, after."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            argv, env=env, stdout=out, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent
        )
    try:
        if probe is not None:
            wait_http(probe, proc, log)
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def cpu_seconds(root: int) -> float:
    """User + system CPU seconds of process `root` and every descendant alive now."""
    tick = os.sysconf("SC_CLK_TCK")
    stats: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        # After the command: state, ppid, ... utime (12th), stime (13th).
        stats[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        total += stats.get(pid, (0, 0.0))[1]
        todo += [child for child, (parent, _) in stats.items() if parent == pid]
    return total


def own_cpu_seconds() -> float:
    """User + system CPU seconds of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
