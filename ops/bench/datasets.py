"""Generated benchmark inputs: deterministic, so two runs measure the same bytes."""

from __future__ import annotations

from pathlib import Path

import polars as pl

CHUNK_ROWS = 500_000
CATEGORIES = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"]


def chunk(start: int, rows: int) -> pl.DataFrame:
    """Rows `start` to `start + rows` of the one endless table every input is cut from."""
    i = pl.int_range(start, start + rows, dtype=pl.Int64, eager=True)
    frame = pl.DataFrame({"i": i})
    h = pl.col("i").hash(seed=7)
    return frame.select(
        id=pl.col("i"),
        name=pl.format("user-{}", (h % 50_000_000).cast(pl.String)),
        amount=((h % 1_000_000).cast(pl.Float64) / 100.0 - 2_000.0).round(2),
        quantity=(h // 7 % 1000).cast(pl.Int64),
        category=pl.lit(pl.Series(CATEGORIES)).gather(h % len(CATEGORIES)),
        day=pl.date(2020, 1, 1) + pl.duration(days=(h // 13 % 1500).cast(pl.Int64)),
        active=(h // 17 % 2) == 0,
        # Quoted delimiters and empty cells appear every few rows, as in real exports.
        note=pl.when(h // 19 % 5 == 0)
        .then(pl.format("note, with comma {}", (h % 97).cast(pl.String)))
        .when(h // 19 % 5 == 1)
        .then(None)
        .otherwise(pl.lit("plain")),
    )


def csv_of_size(target: Path, size: int) -> Path:
    """A CSV of at least `size` bytes, reused when an earlier run already wrote it."""
    if target.exists() and target.stat().st_size >= size:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    start = 0
    with partial.open("wb") as f:
        while f.tell() < size:
            chunk(start, CHUNK_ROWS).write_csv(f, include_header=start == 0)
            start += CHUNK_ROWS
    partial.replace(target)
    return target
