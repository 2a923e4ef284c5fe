"""Column profiles of delimited text files (CSV, TSV, semicolon- and pipe-separated)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import polars as pl
from polars.exceptions import NoDataError, PanicException, PolarsError

from actors.errors import BadFile
from actors.processors.base import FileInfo
from actors.processors.detect import CSV, HEAD_SIZE, TSV, decode_text, sniff_delimiter
from schemas.results import ColumnProfile, Histogram, TableResult, TopValue

NULL_MARKERS = ["", "NA", "N/A", "null", "NaN"]
PREVIEW_ROWS = 20
TOP_VALUES = 10
BINS = 10


class TabularProcessor:
    """Profiles every column of a delimited file: counts, range, mean, histogram, top values."""

    name: ClassVar[str] = "tabular"
    priority: ClassVar[int] = 100

    def accepts(self, mime: str) -> bool:
        return mime in (CSV, TSV)

    def run(self, source: Path, info: FileInfo) -> TableResult:
        with source.open("rb") as f:
            head = f.read(HEAD_SIZE)
        if not head.strip():
            raise BadFile("empty file")
        if b"\x00" in head:
            raise BadFile("not a text file: binary content where CSV was expected")
        text = decode_text(head)
        sniffed = sniff_delimiter(text) if text is not None else None
        delimiter = sniffed or ("\t" if info.mime == TSV else ",")
        try:
            return _profile(source, delimiter)
        except NoDataError:
            raise BadFile("empty file") from None
        # A panic inside polars surfaces as a BaseException; malformed input is its likely cause.
        except (PolarsError, PanicException) as exc:
            raise BadFile(f"could not parse as CSV: {_first_line(exc)}") from exc


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _profile(source: Path, delimiter: str) -> TableResult:
    lazy = pl.scan_csv(
        source,
        separator=delimiter,
        has_header=True,
        null_values=NULL_MARKERS,
        empty_string_is_null=True,
        encoding="utf8-lossy",
        # A late non-numeric value must turn the column into text, not fail the parse.
        infer_schema_length=None,
        try_parse_dates=True,
    )
    # Collected once so the several passes below parse the file only once; streaming them
    # over `lazy` instead is a later step.
    df = lazy.collect()
    frame = df.lazy()
    schema = list(df.schema.items())

    stats = frame.select(_stat_exprs(schema)).collect().row(0, named=True)
    ranges = {i: _finite_range(stats, i) for i, (_, dtype) in enumerate(schema) if _numeric(dtype)}
    strings = [i for i, (_, dtype) in enumerate(schema) if dtype == pl.String]

    queries = [frame.select(_histogram_exprs(schema, ranges))]
    queries += [_top_query(frame, schema[i][0]) for i in strings]
    histogram_frame, *top_frames = pl.collect_all(queries)
    histogram_row = histogram_frame.row(0, named=True) if histogram_frame.width else {}
    tops = {
        i: [TopValue(value=_json_scalar(v), count=n) for v, n in top.iter_rows()]
        for i, top in zip(strings, top_frames, strict=True)
    }

    columns = [
        ColumnProfile(
            name=name,
            dtype=_dtype_name(dtype),
            null_count=stats[f"nulls{i}"],
            distinct_count=stats[f"distinct{i}"],
            min=_json_scalar(stats[f"min{i}"]),
            max=_json_scalar(stats[f"max{i}"]),
            mean=stats.get(f"mean{i}"),
            histogram=_histogram(histogram_row, i, ranges.get(i)),
            top=tops.get(i),
        )
        for i, (name, dtype) in enumerate(schema)
    ]
    preview = [
        {key: _json_scalar(value) for key, value in row.items()}
        for row in df.head(PREVIEW_ROWS).iter_rows(named=True)
    ]
    return TableResult(rows=df.height, columns=columns, preview=preview, delimiter=delimiter)


def _numeric(dtype: pl.DataType) -> bool:
    return dtype.is_numeric()


def _finite(column: str) -> pl.Expr:
    # Histograms skip infinities: one infinite value would make every bin infinitely wide.
    values = pl.col(column).cast(pl.Float64)
    return values.filter(values.is_finite())


def _stat_exprs(schema: list[tuple[str, pl.DataType]]) -> list[pl.Expr]:
    # Aliases are positional so that no column name, however odd, can collide with another.
    exprs: list[pl.Expr] = []
    for i, (name, dtype) in enumerate(schema):
        col = pl.col(name)
        exprs += [
            col.null_count().alias(f"nulls{i}"),
            col.drop_nulls().n_unique().alias(f"distinct{i}"),
            col.min().alias(f"min{i}"),
            col.max().alias(f"max{i}"),
        ]
        if _numeric(dtype):
            finite = _finite(name)
            exprs += [
                col.cast(pl.Float64).mean().alias(f"mean{i}"),
                finite.min().alias(f"lo{i}"),
                finite.max().alias(f"hi{i}"),
                finite.len().alias(f"n{i}"),
            ]
    return exprs


def _finite_range(stats: dict[str, Any], i: int) -> tuple[float, float, int] | None:
    lo, hi, n = stats[f"lo{i}"], stats[f"hi{i}"], stats[f"n{i}"]
    if lo is None or hi is None or not n:
        return None
    return float(lo), float(hi), int(n)


def _histogram_exprs(
    schema: list[tuple[str, pl.DataType]], ranges: dict[int, tuple[float, float, int] | None]
) -> list[pl.Expr]:
    exprs: list[pl.Expr] = []
    for i, bounds in ranges.items():
        if bounds is None or bounds[0] == bounds[1]:
            continue
        lo, hi, _ = bounds
        width = (hi - lo) / BINS
        # Clipping puts the maximum, which would index bin BINS, into the last bin.
        index = ((_finite(schema[i][0]) - lo) / width).floor().clip(0, BINS - 1)
        exprs += [(index == b).sum().alias(f"bin{i}_{b}") for b in range(BINS)]
    return exprs


def _histogram(
    row: dict[str, Any], i: int, bounds: tuple[float, float, int] | None
) -> Histogram | None:
    if bounds is None:
        return None
    lo, hi, n = bounds
    if lo == hi:
        return Histogram(edges=[lo, hi], counts=[n])
    width = (hi - lo) / BINS
    # The last edge is the maximum itself, not lo + BINS * width with its rounding error.
    edges = [lo + b * width for b in range(BINS)] + [hi]
    return Histogram(edges=edges, counts=[int(row[f"bin{i}_{b}"]) for b in range(BINS)])


def _top_query(frame: pl.LazyFrame, column: str) -> pl.LazyFrame:
    return (
        frame.select(pl.col(column).drop_nulls().alias("value"))
        .group_by("value")
        .agg(pl.len().alias("count"))
        .sort(["count", "value"], descending=[True, False])
        .head(TOP_VALUES)
    )


def _dtype_name(dtype: pl.DataType) -> str:
    if dtype == pl.String:
        return "str"
    if dtype == pl.Boolean:
        return "bool"
    # Parametrised types (Datetime's unit and zone) keep just their family name.
    return type(dtype).__name__.lower()


# Text cells are cut to this many characters in the result (preview, top, min/max):
# a profile describes the data, it does not carry it, and it must fit in one event.
MAX_TEXT = 200


def _json_scalar(value: object) -> Any:
    """Make a polars cell JSON-friendly: temporal values as ISO strings, long text cut."""
    if isinstance(value, str):
        return value if len(value) <= MAX_TEXT else value[: MAX_TEXT - 1] + "…"
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal):
        return float(value) if value.is_finite() else None
    return str(value)
