"""`conveyor bench processing`: the tabular profile of a generated CSV against the bare
polars read of the same file, and peak RSS of the profiling process."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import msgspec

from ops.bench.report import Report, machine
from schemas.settings import Settings

MB = 1024 * 1024


class Run(msgspec.Struct, frozen=True, kw_only=True):
    kind: str
    file_bytes: int
    seconds: float
    mb_per_s: float
    peak_rss_mb: float


class ProcessingReport(Report, frozen=True, kw_only=True):
    runs: list[Run]
    ratio_to_bare_polars: float
    """Conveyor's MB/s over the bare read's, on the same file in the same run."""


def _measure(kind: str, path: Path) -> Run:
    done = subprocess.run(
        [sys.executable, "-m", "ops.bench.worker", kind, str(path)],
        check=True,
        capture_output=True,
    )
    figures = msgspec.json.decode(done.stdout)
    size = path.stat().st_size
    return Run(
        kind=kind,
        file_bytes=size,
        seconds=round(figures["seconds"], 3),
        mb_per_s=round(size / MB / figures["seconds"], 1),
        peak_rss_mb=round(figures["peak_rss_bytes"] / MB, 1),
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size-mb", type=int, default=1024, help="file for the MB/s figures")
    parser.add_argument("--large-mb", type=int, default=2048, help="file for the peak RSS figure")


def run(
    settings: Settings, args: argparse.Namespace, echo: Callable[[str], None]
) -> ProcessingReport:
    # Here, not at the top: polars (the generator's) would load with every `conveyor`
    # command, the gateway's included, since the CLI lists this suite's arguments.
    from ops.bench.datasets import csv_of_size

    size_mb, large_mb = args.size_mb, args.large_mb
    bench_dir = Path(settings.data_dir) / "bench"
    echo(f"generating {size_mb} MB and {large_mb} MB CSVs in {bench_dir} (kept for later runs)")
    small = csv_of_size(bench_dir / f"table-{size_mb}mb.csv", size_mb * MB)
    large = csv_of_size(bench_dir / f"table-{large_mb}mb.csv", large_mb * MB)
    # Warm the page cache so that neither side pays for the first read from disk.
    _measure("polars", small)
    runs = [_measure("polars", small), _measure("conveyor", small), _measure("conveyor", large)]
    ratio = runs[1].mb_per_s / runs[0].mb_per_s
    report = ProcessingReport(
        suite="processing", **machine(), runs=runs, ratio_to_bare_polars=round(ratio, 3)
    )
    echo(f"{'run':<34}{'file MB':>10}{'seconds':>10}{'MB/s':>10}{'peak RSS MB':>14}")
    labels = ["bare polars read_csv", "conveyor profile + exports", "conveyor profile + exports"]
    for label, r in zip(labels, runs, strict=True):
        echo(
            f"{label:<34}{r.file_bytes / MB:>10.0f}{r.seconds:>10.2f}"
            f"{r.mb_per_s:>10.1f}{r.peak_rss_mb:>14.1f}"
        )
    echo(f"ratio to the bare polars read: {ratio:.3f}")
    return report
