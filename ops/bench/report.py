"""What every benchmark report carries: when, which commit, on what machine."""

from __future__ import annotations

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
    }


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
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)

    return Latency(p50=rank(0.50), p99=rank(0.99), p999=rank(0.999), max=rank(1.0))
