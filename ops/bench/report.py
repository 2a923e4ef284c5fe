"""What every benchmark report carries: when, which commit, on what machine."""

from __future__ import annotations

import math
import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec


class Report(msgspec.Struct, frozen=True, kw_only=True):
    suite: str
    date: str
    commit: str
    cores: int
    memory_gb: float
    python: str
    platform: str
    steal_percent: float | None = None
    """Share of the CPU time, while the suite ran, that the hypervisor gave to other
    guests (`steal` in /proc/stat): on a shared VM, a suite's figures are only worth
    as much as this is low. None where /proc/stat is not there."""
    cpu_model: str = ""
    """The processor as the kernel names it: machines of one size differ by model, and
    so do the shares of a request's CPU (system calls against Python code)."""


def cpu_ticks() -> tuple[int, int] | None:
    """(stolen, all) CPU ticks since boot, every CPU together, or None off Linux."""
    try:
        with open("/proc/stat") as stat:
            fields = stat.readline().split()
    except OSError:
        return None
    # cpu user nice system idle iowait irq softirq steal (guest time is in user).
    ticks = [int(f) for f in fields[1:9]]
    return ticks[7], sum(ticks)


def steal_percent(before: tuple[int, int] | None, after: tuple[int, int] | None) -> float | None:
    if before is None or after is None or after[1] <= before[1]:
        return None
    return round(100 * (after[0] - before[0]) / (after[1] - before[1]), 1)


def machine() -> dict[str, Any]:
    try:
        # "-dirty" when the code measured is not the commit's alone.
        commit = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=7"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": commit,
        "cores": os.cpu_count() or 0,
        "memory_gb": round(memory / 1024**3, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_model": cpu_model(),
    }


def cpu_model() -> str:
    """The processor's name as the kernel gives it (Linux), else what the platform
    says."""
    try:
        with open("/proc/cpuinfo") as info:
            named = model_name(info.read())
    except OSError:
        named = ""
    return named or platform.processor() or platform.machine()


def model_name(cpuinfo: str) -> str:
    """The first `model name` of /proc/cpuinfo's text; "" if none (ARM kernels)."""
    for line in cpuinfo.splitlines():
        name, _, value = line.partition(":")
        if name.strip() == "model name":
            return value.strip()
    return ""


def write(report: Report, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(msgspec.json.format(msgspec.json.encode(report)))
    return target


class Latency(msgspec.Struct, frozen=True, kw_only=True):
    """Milliseconds."""

    p50: float
    p99: float
    p999: float
    max: float


def latency(seconds: list[float]) -> Latency:
    """Percentiles (nearest rank) of `seconds`, in milliseconds."""
    if not seconds:
        return Latency(p50=0.0, p99=0.0, p999=0.0, max=0.0)
    ordered = sorted(seconds)

    def rank(q: float) -> float:
        # The smallest value with at least q of all values at or below it.
        return round(ordered[max(0, math.ceil(q * len(ordered)) - 1)] * 1000, 2)

    return Latency(p50=rank(0.50), p99=rank(0.99), p999=rank(0.999), max=rank(1.0))
