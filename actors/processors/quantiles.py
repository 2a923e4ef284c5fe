"""Exact quantiles of a numeric column.

A table in memory is sorted and read at the wanted ranks. One on disk is never held
whole: a histogram finds the bin holding each wanted rank; a bin small enough is counted
value by value, a larger one is split into its own histogram, and so on, so memory stays
bounded by `EXACT_CAP` distinct values whatever the column's size. Both give the same
figures: the values at the ranks, linearly interpolated between them.
"""

from __future__ import annotations

import bisect
import itertools
import math
from typing import Final

import polars as pl

from actors.processors.bins import bin_counts, bin_index, bin_query, finite_values
from schemas.results import Quantiles

POINTS = (0.05, 0.25, 0.5, 0.75, 0.95)
QUANTILE_BINS = 4096
EXACT_CAP = 250_000
"""Values in one histogram bin that are counted exactly rather than narrowed further."""
MAX_DEPTH = 8
ENGINE: Final = "streaming"


def _positions(n: int) -> list[float]:
    return [q * (n - 1) for q in POINTS]


def ranks_for(n: int) -> list[int]:
    """The 0-based ranks among `n` values that the quantiles are interpolated between."""
    return sorted({r for p in _positions(n) for r in (math.floor(p), math.ceil(p))})


def sorted_query(frame: pl.LazyFrame, name: str, n: int) -> pl.LazyFrame:
    """The finite values of column `name` (`n` of them) at `ranks_for(n)`, for a table in memory."""
    return frame.select(finite_values(name).sort().gather(ranks_for(n)).alias("v"))


def interpolated(n: int, at: dict[int, float]) -> Quantiles:
    """The quantiles of `n` values, from the values `at` each of `ranks_for(n)`."""
    found = []
    for p in _positions(n):
        below, above = at[math.floor(p)], at[math.ceil(p)]
        found.append(below + (p - math.floor(p)) * (above - below))
    return Quantiles(**dict(zip(("p5", "p25", "p50", "p75", "p95"), found, strict=True)))


def refined(frame: pl.LazyFrame, name: str, finite: tuple[float, float, int]) -> Quantiles:
    """The quantiles of column `name` (finite values from lo to hi, n of them) by narrowing
    histograms, each a streaming pass over `frame`."""
    lo, hi, n = finite
    column = frame.select(finite_values(name).alias("v"))
    return interpolated(n, _values_at_ranks(column, ranks_for(n), lo, hi, pl.lit(True), 0))


def _values_at_ranks(
    column: pl.LazyFrame,
    ranks: list[int],
    lo: float,
    hi: float,
    within: pl.Expr,
    depth: int,
) -> dict[int, float]:
    """The value at each 0-based rank among the values `v` of `column` where `within` holds."""
    if lo == hi:
        return dict.fromkeys(ranks, lo)
    values = pl.col("v")
    answer = bin_query(column.filter(within), values, lo, hi, QUANTILE_BINS).collect(engine=ENGINE)
    counts = bin_counts(answer, QUANTILE_BINS)
    width = (hi - lo) / QUANTILE_BINS
    found: dict[int, float] = {}
    wanted: dict[int, list[int]] = {}
    ends = list(itertools.accumulate(counts))
    starts = [end - count for end, count in zip(ends, counts, strict=True)]
    for rank in ranks:
        wanted.setdefault(bisect.bisect_right(ends, rank), []).append(rank)
    index = bin_index(values, lo, hi, QUANTILE_BINS)
    narrow = [b for b in wanted if counts[b] <= EXACT_CAP or depth >= MAX_DEPTH]
    if narrow:
        # All narrow bins in one pass: value counts rather than values, so a bin of one
        # repeated value stays one row.
        counted = (
            column.filter(within)
            .select(index.alias("bin"), values)
            .filter(pl.col("bin").is_in(narrow))
            .group_by("bin", "v")
            .agg(pl.len().alias("n"))
            .sort("bin", "v")
            .collect(engine=ENGINE)
        )
        for key, part in counted.partition_by("bin", as_dict=True, maintain_order=True).items():
            b = int(key[0])
            relative = {r - starts[b]: r for r in wanted[b]}
            seen = 0
            for value, n in part.select("v", "n").iter_rows():
                seen += n
                for rel in [rel for rel in relative if rel < seen]:
                    found[relative.pop(rel)] = float(value)
    for b in wanted:
        if b in narrow:
            continue
        b_lo = lo + b * width
        b_hi = hi if b == QUANTILE_BINS - 1 else lo + (b + 1) * width
        offsets = [r - starts[b] for r in wanted[b]]
        exact = _values_at_ranks(column, offsets, b_lo, b_hi, within & (index == b), depth + 1)
        for r, rel in zip(wanted[b], offsets, strict=True):
            found[r] = exact[rel]
    return found
