"""Column statistics over a typed table on disk (Parquet), in bounded memory.

Every query streams over the file and keeps only small state: aggregates, at most
`quantiles.QUANTILE_BINS` histogram bins, value counts of columns with few distinct
values, or value counts inside one narrow histogram bin. Nothing holds a whole column,
except for a small export (`SMALL_EXPORT_BYTES`), which is read into memory once and
queried there, the queries that do not depend on each other all in one call: the same
figures, at a fraction of the fixed cost per query.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import math
from collections.abc import Iterator
from contextvars import ContextVar
from decimal import Decimal
from pathlib import Path
from typing import Any, Final, Literal, TypeVar

import polars as pl

from actors.processors import quantiles
from actors.processors.bins import bin_counts, bin_query, finite_values
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
DUPLICATE_BUCKET = 2_000_000
"""Row hashes checked per pass when counting duplicate rows."""
TOP_CANDIDATE_BATCH = 250_000
TOP_SAMPLE_BATCHES = 4
TOP_CANDIDATES = 1_000
MAX_TEXT = 200
"""Text cells are cut to this many characters in a result: a profile describes the data,
it does not carry it, and it must fit in one event."""

ENGINE: Final = "streaming"
SMALL_EXPORT_BYTES = 16 * 1024 * 1024
"""An export up to this size is read into memory once and every query runs there, on the
in-memory engine: the same queries and figures, without re-reading the file and setting
up a streaming pipeline for each of the many small queries a profile makes."""
Engine = Literal["streaming", "in-memory"]
TOGETHER_BYTES = 64 * 1024 * 1024
"""An export in memory up to this size has its independent queries run side by side
(`pl.collect_all`): their working memory adds up, to a few times the table's."""
_engine: ContextVar[Engine] = ContextVar("profile_engine", default=ENGINE)
_together: ContextVar[bool] = ContextVar("profile_together", default=False)
Key = TypeVar("Key")


@contextlib.contextmanager
def opened(path: Path) -> Iterator[pl.LazyFrame]:
    """The export for `profile_columns` and `duplicate_rows`, read into memory once if
    small (their queries then run on the in-memory engine), else scanned as they go."""
    engine: Engine
    together = False
    if path.stat().st_size <= SMALL_EXPORT_BYTES:
        table = pl.read_parquet(path)
        frame, engine = table.lazy(), "in-memory"
        together = table.estimated_size() <= TOGETHER_BYTES
    else:
        frame, engine = pl.scan_parquet(path), ENGINE
    tokens = _engine.set(engine), _together.set(together)
    try:
        yield frame
    finally:
        _engine.reset(tokens[0])
        _together.reset(tokens[1])


def profile_columns(frame: pl.LazyFrame) -> tuple[int, list[ColumnProfile]]:
    """Row count and column profiles of an export `opened`."""
    schema = list(frame.collect_schema().items())
    if not schema:
        return 0, []
    stats = _stats(frame, schema)
    rows = int(stats["count0"] + stats["nulls0"])
    in_memory = _engine.get() == "in-memory"
    exact: set[int] = set()
    finite: dict[int, tuple[float, float, int]] = {}
    spans: dict[int, tuple[Any, Any]] = {}
    # Every query here needs only the statistics above: a small table runs them together.
    queries: dict[tuple[str, int], pl.LazyFrame] = {}
    for i, (name, dtype) in enumerate(schema):
        if stats[f"approx{i}"] <= DISTINCT_BOUND and dtype != pl.Null:
            exact.add(i)
            queries["distinct", i] = _distinct_query(frame, pl.col(name))
        if dtype.is_numeric() and (found := _finite_range(stats, i)):
            finite[i] = found
            lo, hi, n = found
            if lo != hi:
                queries["histogram", i] = bin_query(frame, finite_values(name), lo, hi, BINS)
            if in_memory:
                queries["quantiles", i] = quantiles.sorted_query(frame, name, n)
        if _temporal(dtype) and (span := _time_range(stats, i)):
            spans[i] = span
            # Binned as floats: nanosecond values too close for a float to tell apart are
            # one bin.
            first, last = float(span[0]), float(span[1])
            if first != last:
                physical = pl.col(name).to_physical().drop_nulls().cast(pl.Float64)
                queries["time", i] = bin_query(frame, physical, first, last, BINS)
        if _textual(dtype) and rows and i in exact:
            queries["top", i] = _top_query(_top_values(frame, name))
    answers = _collect_all(queries)
    columns = []
    for i, (name, dtype) in enumerate(schema):
        top, top_exact = None, True
        if _textual(dtype) and rows:
            top_exact = i in exact
            answer = answers.get(("top", i))
            top = _top_from(answer if answer is not None else _top_sampled(frame, name, rows))
        columns.append(
            ColumnProfile(
                name=name,
                dtype=_dtype_name(dtype),
                count=int(stats[f"count{i}"]),
                null_count=int(stats[f"nulls{i}"]),
                distinct_count=(
                    int(answers["distinct", i].item()) if i in exact else int(stats[f"approx{i}"])
                ),
                distinct_exact=i in exact or int(stats[f"approx{i}"]) == 0,
                min=json_scalar(stats[f"min{i}"]),
                max=json_scalar(stats[f"max{i}"]),
                mean=_float(stats.get(f"mean{i}")),
                std=_float(stats.get(f"std{i}")),
                histogram=_histogram(finite[i], answers.get(("histogram", i)))
                if i in finite
                else None,
                quantiles=_quantiles(frame, name, finite[i], answers.get(("quantiles", i)))
                if i in finite
                else None,
                time_histogram=_time_histogram(
                    dtype, spans[i], int(stats[f"count{i}"]), answers.get(("time", i))
                )
                if i in spans
                else None,
                top=top,
                top_exact=top_exact,
                min_length=stats.get(f"minlen{i}"),
                max_length=stats.get(f"maxlen{i}"),
                mean_length=_float(stats.get(f"meanlen{i}")),
            )
        )
    return rows, columns


def _stats(frame: pl.LazyFrame, schema: list[tuple[str, pl.DataType]]) -> dict[str, Any]:
    # Always the streaming engine: its distinct-count estimate (HyperLogLog) differs from
    # the in-memory engine's, and a figure must not depend on the file's size.
    exprs = [_stat_exprs(i, name, dtype) for i, (name, dtype) in enumerate(schema)]
    if _engine.get() == "in-memory":
        return frame.select(itertools.chain(*exprs)).collect(engine=ENGINE).row(0, named=True)
    # On disk, one query per column: each reads just its column, and the streaming
    # engine's buffers for several columns at once would add up to more than the budget.
    stats: dict[str, Any] = {}
    for column in exprs:
        stats.update(frame.select(column).collect(engine=ENGINE).row(0, named=True))
    return stats


def _collect_all(queries: dict[Key, pl.LazyFrame]) -> dict[Key, pl.DataFrame]:
    """Independent queries' answers: for a small table in memory all in one call, where
    polars runs them side by side and pays its fixed cost per query once; else one after
    the other, since their buffers would add up."""
    if not queries:
        return {}
    if _together.get():
        answers = pl.collect_all(queries.values(), engine="in-memory")
        return dict(zip(queries, answers, strict=True))
    engine = _engine.get()
    return {key: query.collect(engine=engine) for key, query in queries.items()}


def _distinct_query(frame: pl.LazyFrame, expr: pl.Expr) -> pl.LazyFrame:
    # unique() streams with a hash set of the distinct values; n_unique() would first
    # gather the whole column.
    return frame.select(expr.alias("x")).drop_nulls().unique().select(pl.len())


def _distinct(frame: pl.LazyFrame, expr: pl.Expr, engine: Engine | None = None) -> int:
    return int(_distinct_query(frame, expr).collect(engine=engine or _engine.get()).item())


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
        values, finite = col.cast(pl.Float64), finite_values(name)
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


def _time_range(stats: dict[str, Any], i: int) -> tuple[Any, Any] | None:
    """The physical (integer) minimum and maximum of temporal column `i`, if any."""
    lo, hi = stats.get(f"tlo{i}"), stats.get(f"thi{i}")
    return None if lo is None or hi is None else (lo, hi)


def _temporal(dtype: pl.DataType) -> bool:
    return dtype.is_temporal() and dtype != pl.Duration and dtype != pl.Time


def _textual(dtype: pl.DataType) -> bool:
    return dtype in (pl.String, pl.Boolean, pl.Categorical)


def _edges(lo: float, hi: float) -> list[float]:
    """`BINS` equal-width bins from lo to hi; a single one when they are equal."""
    if lo == hi:
        return [lo, hi]
    width = (hi - lo) / BINS
    # The last edge is the maximum itself, not lo + BINS * width with its rounding error.
    return [lo + b * width for b in range(BINS)] + [hi]


def _histogram(finite: tuple[float, float, int], answer: pl.DataFrame | None) -> Histogram:
    lo, hi, n = finite
    counts = [n] if answer is None else bin_counts(answer, BINS)
    return Histogram(edges=_edges(lo, hi), counts=counts)


def _quantiles(
    frame: pl.LazyFrame, name: str, finite: tuple[float, float, int], answer: pl.DataFrame | None
) -> Quantiles:
    n = finite[2]
    if answer is None:
        return quantiles.refined(frame, name, finite)
    return quantiles.interpolated(n, dict(zip(quantiles.ranks_for(n), answer["v"], strict=True)))


def _time_histogram(
    dtype: pl.DataType, span: tuple[Any, Any], count: int, answer: pl.DataFrame | None
) -> TimeHistogram:
    lo, hi = span
    if answer is None:
        edges, counts = [lo, hi], [count]
    else:
        # From the integers themselves: exact edges even for nanosecond values.
        edges, counts = _edges(lo, hi), bin_counts(answer, BINS)
    to_iso = _physical_to_iso(dtype)
    return TimeHistogram(edges=[to_iso(e) for e in edges], counts=counts)


def _physical_to_iso(dtype: pl.DataType) -> Any:
    if isinstance(dtype, pl.Datetime):
        per_second = {"ns": 1e9, "us": 1e6, "ms": 1e3}[dtype.time_unit or "us"]
        epoch = dt.datetime(1970, 1, 1)
        return lambda v: (epoch + dt.timedelta(seconds=v / per_second)).isoformat()
    day0 = dt.datetime(1970, 1, 1)
    # Date bins may fall inside a day: their edges keep the time of day.
    return lambda v: (day0 + dt.timedelta(days=v)).isoformat()


def _top_values(frame: pl.LazyFrame, name: str) -> pl.LazyFrame:
    return frame.select(pl.col(name).drop_nulls().cast(pl.String).alias("value"))


def _top_query(values: pl.LazyFrame) -> pl.LazyFrame:
    """The most frequent of `values`, with their counts (exact over what it is given)."""
    return (
        values.group_by("value")
        .agg(pl.len().alias("count"))
        .sort(["count", "value"], descending=[True, False])
        .head(TOP_VALUES)
    )


def _top_sampled(frame: pl.LazyFrame, name: str, rows: int) -> pl.DataFrame:
    """`_top_query` over the candidates of a column with too many distinct values."""
    values = _top_values(frame, name)
    candidates = _top_candidates(values, rows)
    query = _top_query(values.filter(pl.col("value").is_in(candidates)))
    return query.collect(engine=_engine.get())


def _top_from(answer: pl.DataFrame) -> list[TopValue]:
    return [TopValue(value=json_scalar(v), count=n) for v, n in answer.iter_rows()]


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
