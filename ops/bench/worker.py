"""One measured run in a process of its own, so its peak RSS is its own: `python -m
ops.bench.worker KIND PATH` prints `{"seconds": ..., "peak_rss_bytes": ...}`."""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from pathlib import Path

import msgspec
import polars as pl

from actors.processors.base import FileInfo
from actors.processors.tabular import TabularProcessor


def _bare_polars(path: Path) -> None:
    pl.read_csv(path)


def _conveyor(path: Path) -> None:
    info = FileInfo(filename=path.name, size=path.stat().st_size, sha256="", mime="text/csv")
    with tempfile.TemporaryDirectory(prefix="bench-", dir=path.parent) as tmp:
        work = Path(tmp)
        source = work / "source.csv"
        # The actor profiles a downloaded copy in its own directory; a link stands in for it.
        source.symlink_to(path)
        out = work / "artifacts"
        out.mkdir()
        TabularProcessor().run(source, info, out)


KINDS = {"polars": _bare_polars, "conveyor": _conveyor}


def main() -> None:
    kind, path = sys.argv[1], Path(sys.argv[2])
    started = time.perf_counter()
    KINDS[kind](path)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    sys.stdout.write(msgspec.json.encode({"seconds": seconds, "peak_rss_bytes": peak}).decode())


if __name__ == "__main__":
    main()
