"""Equal-width bins over a numeric column: the histograms' and the quantiles' first step."""

from __future__ import annotations

import polars as pl


def finite_values(name: str) -> pl.Expr:
    values = pl.col(name).cast(pl.Float64)
    return values.filter(values.is_finite())


def bin_index(values: pl.Expr, lo: float, hi: float, bins: int) -> pl.Expr:
    """Bin b holds lo + b*width <= x < lo + (b+1)*width; the last bin also holds hi."""
    width = (hi - lo) / bins
    # Clipping puts the maximum, which would index bin `bins`, into the last bin.
    guess = ((values - lo) / width).floor().clip(0, bins - 1).cast(pl.Int64)
    # The division can land a hair off (polars multiplies by the reciprocal): compare with
    # the reported edges themselves, so a value on an edge goes to the bin it starts.
    return (
        pl.when((guess < bins - 1) & (values >= lo + (guess + 1) * width))
        .then(guess + 1)
        .when((guess > 0) & (values < lo + guess * width))
        .then(guess - 1)
        .otherwise(guess)
    )


def bin_query(
    frame: pl.LazyFrame, values: pl.Expr, lo: float, hi: float, bins: int
) -> pl.LazyFrame:
    """How many `values` fall in each bin, as (bin, n) rows; see `bin_counts`."""
    return (
        frame.select(bin_index(values, lo, hi, bins).alias("bin"))
        .group_by("bin")
        .agg(pl.len().alias("n"))
    )


def bin_counts(answer: pl.DataFrame, bins: int) -> list[int]:
    """A `bin_query`'s answer as one count per bin."""
    counts = [0] * bins
    for b, n in answer.iter_rows():
        counts[b] = n
    return counts
