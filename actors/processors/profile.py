"""Column statistics over a typed table on disk (Parquet), in bounded memory.

Every query streams over the file and keeps only small state: aggregates, at most
`QUANTILE_BINS` histogram bins, value counts of columns with few distinct values, or
value counts inside one narrow histogram bin. Nothing holds a whole column, except
for a small export (`SMALL_EXPORT_BYTES`), which is read into memory once and queried
there: the same queries, much less fixed cost per query.
"""

from __future__ import annotations

import bisect
import contextlib
import datetime as dt
import itertools
import math
from collections.abc import Iterator
from contextvars import ContextVar
from decimal import Decimal
from pathlib import Path
from typing import Any, Final, Literal

import polars as pl

from schemas.results import (
    ColumnProfile,
    Histogram,
    Quantiles,
    TimeHistogram,
    TopValue,
)

PREVIEW_ROWS = 20
TOP_VALUES = 10
BINS = 20
DISTINCT_BOUND = 100_000
"""Distinct counts are exact when the HyperLogLog estimate is at most this, else the estimate."""
QUANTILE_BINS = 4096
EXACT_CAP = 250_000
"""Values in one histogram bin that are counted exactly rather than narrowed further."""
MAX_DEPTH = 8
DUPLICATE_BUCKET = 2_000_000
"""Row hashes checked per pass when counting duplicate rows."""
TOP_CANDIDATE_BATCH = 250_000
TOP_SAMPLE_BATCHES = 4
TOP_CANDIDATES = 1_000
QUANTILE_POINTS = (0.05, 0.25, 0.5, 0.75, 0.95)
MAX_TEXT = 200
"""Text cells are cut to this many characters in a result: a profile describes the data,
it does not carry it, and it must fit in one event."""

ENGINE: Final = "streaming"
SMALL_EXPORT_BYTES = 16 * 1024 * 1024
"""An export up to this size is read into memory once and every query runs there, on the
in-memory engine: the same queries and figures, without re-reading the file and setting
up a streaming pipeline for each of the many small queries a profile makes."""
Engine = Literal["streaming", "in-memory"]
_engine: ContextVar[Engine] = ContextVar("profile_engine", default=ENGINE)


@contextlib.contextmanager
def opened(path: Path) -> Iterator[pl.LazyFrame]:
    """The export for `profile_columns` and `duplicate_rows`, read into memory once if
    small (their queries then run on the in-memory engine), else scanned as they go."""
    engine: Engine
    if path.stat().st_size <= SMALL_EXPORT_BYTES:
        frame, engine = pl.read_parquet(path).lazy(), "in-memory"
    else:
        frame, engine = pl.scan_parquet(path), ENGINE
    token = _engine.set(engine)
    try:
        yield frame
    finally:
        _engine.reset(token)


def profile_columns(frame: pl.LazyFrame) -> tuple[int, list[ColumnProfile]]:
    """Row count and column profiles of an export `opened`."""
    schema = list(frame.collect_schema().items())
    if not schema:
        return 0, []
    # One query per column: each reads just its column, and the streaming engine's buffers
    # for several columns at once would add up to more than the memory budget.
    stats: dict[str, Any] = {}
    for i, (name, dtype) in enumerate(schema):
        query = frame.select(_stat_exprs(i, name, dtype))
        # Always the streaming engine: its distinct-count estimate (HyperLogLog) differs
        # from the in-memory engine's, and a figure must not depend on the file's size.
        stats.update(query.collect(engine=ENGINE).row(0, named=True))
    rows = int(stats["count0"] + stats["nulls0"])
    exact = {
        i
        for i, (_, dtype) in enumerate(schema)
        if stats[f"approx{i}"] <= DISTINCT_BOUND and dtype != pl.Null
    }
    distinct = [
        _distinct(frame, pl.col(name)) if i in exact else int(stats[f"approx{i}"])
        for i, (name, _) in enumerate(schema)
    ]
    columns = []
    for i, (name, dtype) in enumerate(schema):
        numeric = dtype.is_numeric()
        temporal = dtype.is_temporal() and dtype != pl.Duration and dtype != pl.Time
        finite = _finite_range(stats, i) if numeric else None
        textual = dtype in (pl.String, pl.Boolean, pl.Categorical)
        top, top_exact = (
            _top(frame, name, small=i in exact, rows=rows) if textual and rows else (None, True)
        )
        columns.append(
            ColumnProfile(
                name=name,
                dtype=_dtype_name(dtype),
                count=int(stats[f"count{i}"]),
                null_count=int(stats[f"nulls{i}"]),
                distinct_count=distinct[i],
                distinct_exact=i in exact or distinct[i] == 0,
                min=json_scalar(stats[f"min{i}"]),
                max=json_scalar(stats[f"max{i}"]),
                mean=_float(stats.get(f"mean{i}")),
                std=_float(stats.get(f"std{i}")),
                histogram=_histogram(frame, name, finite) if finite else None,
                quantiles=_quantiles(frame, name, finite) if finite else None,
                time_histogram=_time_histogram(frame, name, dtype, stats, i) if temporal else None,
                top=top,
                top_exact=top_exact,
                min_length=stats.get(f"minlen{i}"),
                max_length=stats.get(f"maxlen{i}"),
                mean_length=_float(stats.get(f"meanlen{i}")),
            )
        )
    return rows, columns


def _distinct(frame: pl.LazyFrame, expr: pl.Expr, engine: Engine | None = None) -> int:
    # unique() streams with a hash set of the distinct values; n_unique() would first
    # gather the whole column.
    query = frame.select(expr.alias("x")).drop_nulls().unique().select(pl.len())
    return int(query.collect(engine=engine or _engine.get()).item())


def preview(frame: pl.LazyFrame) -> list[dict[str, Any]]:
    """The first rows of an export `opened`, as JSON values."""
    head = frame.head(PREVIEW_ROWS).collect()
    return [{k: json_scalar(v) for k, v in row.items()} for row in head.iter_rows(named=True)]


def duplicate_rows(frame: pl.LazyFrame, rows: int, work: Path) -> int:
    """Rows of an export `opened` equal to an earlier row, exactly: distinct row hashes
    counted bucket by bucket."""
    if rows < 2:
        return 0
    row_hash = pl.struct(pl.all()).hash(seed=0).alias("h")
    if rows <= DUPLICATE_BUCKET:
        return rows - _distinct(frame, row_hash)
    hashes = work / "row-hashes.parquet"
    frame.select(row_hash).sink_parquet(hashes)
    buckets = math.ceil(rows / DUPLICATE_BUCKET)
    scan = pl.scan_parquet(hashes)
    unique = 0
    for b in range(buckets):
        # Streamed even when the export is small: the hashes of many rows need not be.
        unique += _distinct(scan.filter(pl.col("h") % buckets == b), pl.col("h"), ENGINE)
    hashes.unlink()
    return rows - unique


def _stat_exprs(i: int, name: str, dtype: pl.DataType) -> list[pl.Expr]:
    # Aliases are positional so that no column name, however odd, can collide with another.
    col = pl.col(name)
    exprs = [
        col.count().alias(f"count{i}"),
        col.null_count().alias(f"nulls{i}"),
        col.approx_n_unique().alias(f"approx{i}"),
        col.min().alias(f"min{i}"),
        col.max().alias(f"max{i}"),
    ]
    if dtype.is_numeric():
        values, finite = col.cast(pl.Float64), _finite_values(name)
        exprs += [
            values.mean().alias(f"mean{i}"),
            values.std(ddof=1).alias(f"std{i}"),
            finite.min().alias(f"lo{i}"),
            finite.max().alias(f"hi{i}"),
            finite.len().alias(f"n{i}"),
        ]
    elif dtype.is_temporal():
        physical = col.to_physical()
        exprs += [physical.min().alias(f"tlo{i}"), physical.max().alias(f"thi{i}")]
    elif dtype == pl.String:
        length = col.str.len_chars()
        exprs += [
            length.min().alias(f"minlen{i}"),
            length.max().alias(f"maxlen{i}"),
            length.mean().alias(f"meanlen{i}"),
        ]
    return exprs


def _finite_range(stats: dict[str, Any], i: int) -> tuple[float, float, int] | None:
    lo, hi, n = stats[f"lo{i}"], stats[f"hi{i}"], stats[f"n{i}"]
    if lo is None or hi is None or not n:
        return None
    return float(lo), float(hi), int(n)


def _finite_values(name: str) -> pl.Expr:
    values = pl.col(name).cast(pl.Float64)
    return values.filter(values.is_finite())


def _bin_index(values: pl.Expr, lo: float, hi: float, bins: int) -> pl.Expr:
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


def _bin_counts(frame: pl.LazyFrame, values: pl.Expr, lo: float, hi: float, bins: int) -> list[int]:
    counted = (
        frame.select(_bin_index(values, lo, hi, bins).alias("bin"))
        .group_by("bin")
        .agg(pl.len().alias("n"))
        .collect(engine=_engine.get())
    )
    counts = [0] * bins
    for b, n in counted.iter_rows():
        counts[b] = n
    return counts


def _edges(lo: float, hi: float) -> list[float]:
    """`BINS` equal-width bins from lo to hi; a single one when they are equal."""
    if lo == hi:
        return [lo, hi]
    width = (hi - lo) / BINS
    # The last edge is the maximum itself, not lo + BINS * width with its rounding error.
    return [lo + b * width for b in range(BINS)] + [hi]


def _histogram(frame: pl.LazyFrame, name: str, finite: tuple[float, float, int]) -> Histogram:
    lo, hi, n = finite
    counts = [n] if lo == hi else _bin_counts(frame, _finite_values(name), lo, hi, BINS)
    return Histogram(edges=_edges(lo, hi), counts=counts)


def _quantiles(frame: pl.LazyFrame, name: str, finite: tuple[float, float, int]) -> Quantiles:
    """Exact quantiles of the finite values, linearly interpolated between ranks.

    A histogram finds the bin holding each wanted rank; a bin small enough is counted value
    by value, a larger one is split into its own histogram, and so on: memory stays bounded
    by `EXACT_CAP` distinct values whatever the column's size.
    """
    lo, hi, n = finite
    positions = [q * (n - 1) for q in QUANTILE_POINTS]
    ranks = sorted({r for p in positions for r in (math.floor(p), math.ceil(p))})
    column = frame.select(_finite_values(name).alias("v"))
    values = _values_at_ranks(column, ranks, lo, hi, pl.lit(True), 0)
    found = []
    for p in positions:
        below, above = values[math.floor(p)], values[math.ceil(p)]
        found.append(below + (p - math.floor(p)) * (above - below))
    return Quantiles(**dict(zip(("p5", "p25", "p50", "p75", "p95"), found, strict=True)))


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
    counts = _bin_counts(column.filter(within), values, lo, hi, QUANTILE_BINS)
    width = (hi - lo) / QUANTILE_BINS
    found: dict[int, float] = {}
    wanted: dict[int, list[int]] = {}
    ends = list(itertools.accumulate(counts))
    starts = [end - count for end, count in zip(ends, counts, strict=True)]
    for rank in ranks:
        wanted.setdefault(bisect.bisect_right(ends, rank), []).append(rank)
    index = _bin_index(values, lo, hi, QUANTILE_BINS)
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
            .collect(engine=_engine.get())
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


def _time_histogram(
    frame: pl.LazyFrame, name: str, dtype: pl.DataType, stats: dict[str, Any], i: int
) -> TimeHistogram | None:
    lo, hi = stats.get(f"tlo{i}"), stats.get(f"thi{i}")
    if lo is None or hi is None:
        return None
    if lo == hi:
        counts = [int(stats[f"count{i}"])]
    else:
        physical = pl.col(name).to_physical().drop_nulls().cast(pl.Float64)
        counts = _bin_counts(frame, physical, float(lo), float(hi), BINS)
    to_iso = _physical_to_iso(dtype)
    return TimeHistogram(edges=[to_iso(e) for e in _edges(lo, hi)], counts=counts)


def _physical_to_iso(dtype: pl.DataType) -> Any:
    if isinstance(dtype, pl.Datetime):
        per_second = {"ns": 1e9, "us": 1e6, "ms": 1e3}[dtype.time_unit or "us"]
        epoch = dt.datetime(1970, 1, 1)
        return lambda v: (epoch + dt.timedelta(seconds=v / per_second)).isoformat()
    day0 = dt.datetime(1970, 1, 1)
    # Date bins may fall inside a day: their edges keep the time of day.
    return lambda v: (day0 + dt.timedelta(days=v)).isoformat()


def _top(frame: pl.LazyFrame, name: str, *, small: bool, rows: int) -> tuple[list[TopValue], bool]:
    """The most frequent values; exact for few distinct values, else from candidates."""
    values = frame.select(pl.col(name).drop_nulls().cast(pl.String).alias("value"))
    if not small:
        candidates = _top_candidates(values, rows)
        values = values.filter(pl.col("value").is_in(candidates))
    top = (
        values.group_by("value")
        .agg(pl.len().alias("count"))
        .sort(["count", "value"], descending=[True, False])
        .head(TOP_VALUES)
        .collect(engine=_engine.get())
    )
    return [TopValue(value=json_scalar(v), count=n) for v, n in top.iter_rows()], small


def _top_candidates(values: pl.LazyFrame, rows: int) -> list[str]:
    """Values repeated within sample batches spread over the file (start to end), so that
    sorted or clustered data still offers its frequent values."""
    candidates: set[str] = set()
    step = max(rows // TOP_SAMPLE_BATCHES, 1)
    for offset in range(0, rows, step)[:TOP_SAMPLE_BATCHES]:
        batch = (
            values.slice(offset, TOP_CANDIDATE_BATCH)
            .group_by("value")
            .agg(pl.len().alias("n"))
            .filter(pl.col("n") > 1)
            .sort("n", descending=True)
            .head(TOP_CANDIDATES)
            .collect(engine=_engine.get())
        )
        candidates.update(batch["value"].to_list())
    return sorted(candidates)


def _dtype_name(dtype: pl.DataType) -> str:
    if dtype == pl.String:
        return "str"
    if dtype == pl.Boolean:
        return "bool"
    # Parametrised types (Datetime's unit and zone) keep just their family name.
    return type(dtype).__name__.lower()


def _float(value: object) -> float | None:
    if value is None:
        return None
    number = float(value)  # type: ignore[arg-type]
    # JSON has no NaN or infinity: a mean over infinite values is reported as unknown.
    return number if math.isfinite(number) else None


def json_scalar(value: object) -> Any:
    """Make a polars cell JSON-friendly: temporal values as ISO strings, long text cut."""
    if isinstance(value, str):
        return value if len(value) <= MAX_TEXT else value[: MAX_TEXT - 1] + "…"
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal):
        return float(value) if value.is_finite() else None
    return str(value)
