"""Profiles of tables (CSV, TSV, JSON Lines, Parquet) in bounded memory, with exports and charts.

The file is read once, streaming, into a typed Parquet export; every statistic is then
computed from that export, which reads only the columns each query needs. Column types
are inferred over every row, not a sample: a late non-numeric value makes a column text.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, ClassVar, Final

import polars as pl
from polars.exceptions import NoDataError, PanicException, PolarsError

from actors.errors import BadFile
from actors.processors.base import FileInfo
from actors.processors.charts import histogram_svg
from actors.processors.detect import CSV, NDJSON, PARQUET, TSV
from actors.processors.dialect import Dialect, readable, sniff
from actors.processors.profile import (
    DISTINCT_BOUND,
    duplicate_rows,
    opened,
    preview,
    profile_columns,
)
from actors.processors.ragged import Skipped, skipped_rows
from schemas.results import TableResult

NULL_MARKERS = ["", "NA", "N/A", "null", "NaN"]
EXPORT_PARQUET = "export.parquet"
EXPORT_CSV = "export.csv"
ENGINE: Final = "streaming"
# Snappy: several times faster to write than zstd and readable by every Parquet reader.
COMPRESSION: Final = "snappy"
_ROW = "\x00row"  # a row-number column name no header can hold (polars refuses NUL in CSV names)


class TabularProcessor:
    """Profiles every column of a table; exports it as Parquet and normalized CSV."""

    name: ClassVar[str] = "tabular"
    priority: ClassVar[int] = 100

    def accepts(self, mime: str) -> bool:
        return mime in (CSV, TSV, NDJSON, PARQUET)

    def run(self, source: Path, info: FileInfo, out: Path) -> TableResult:
        with tempfile.TemporaryDirectory(prefix="tabular-", dir=source.parent) as tmp:
            try:
                return _run(source, info, out, Path(tmp))
            except NoDataError:
                raise BadFile("empty file") from None
            # A panic inside polars surfaces as a BaseException; malformed input is its
            # likely cause.
            except (PolarsError, PanicException) as exc:
                raise BadFile(f"could not parse as {_kind(info.mime)}: {_first_line(exc)}") from exc


def _run(source: Path, info: FileInfo, out: Path, work: Path) -> TableResult:
    export = out / EXPORT_PARQUET
    if info.mime in (CSV, TSV):
        dialect = sniff(source, "\t" if info.mime == TSV else ",")
        source, invalid = readable(source, dialect.encoding, work)
        skipped = skipped_rows(
            source,
            delimiter=dialect.delimiter,
            quote=dialect.quote,
            width=len(dialect.names),
            header=dialect.header,
        )
        frame, replaced, commas = _typed(
            _scan_delimited(source, dialect, skipped),
            count_replaced=invalid,
            # In a comma-separated file a comma inside a number is far likelier to group
            # thousands ("1,234" quoted) than to mark decimals.
            decimal_comma=dialect.delimiter != ",",
        )
        extra = {
            "decimal_comma": commas,
            "delimiter": dialect.delimiter,
            "encoding": dialect.encoding,
            "header": dialect.header,
            "quote": dialect.quote,
            "bad_rows": skipped.bad,
            "replaced_rows": replaced,
        }
        fmt = "csv"
    elif info.mime == NDJSON:
        frame, extra, fmt = _flat(pl.scan_ndjson(source, infer_schema_length=None)), {}, "jsonl"
    else:
        frame, extra, fmt = _flat(pl.scan_parquet(source)), {}, "parquet"
    frame.sink_parquet(export, engine=ENGINE, compression=COMPRESSION)

    with opened(export) as table:
        rows, columns = profile_columns(table)
        if not columns:
            raise BadFile("no columns")
        duplicates = duplicate_rows(table, rows, work)
        # From the frame `opened` holds: a small export is not read from disk again.
        table.sink_csv(out / EXPORT_CSV, engine=ENGINE)
        head = preview(table)
    for i, column in enumerate(columns):
        if column.histogram is not None:
            chart = out / f"histogram-{i + 1}.svg"
            chart.write_text(histogram_svg(column.name, column.histogram), encoding="utf-8")
    return TableResult(
        rows=rows,
        columns=columns,
        preview=head,
        format=fmt,
        duplicate_rows=duplicates,
        distinct_bound=DISTINCT_BOUND,
        **extra,  # type: ignore[arg-type]
    )


def _scan_delimited(source: Path, dialect: Dialect, skipped: Skipped) -> pl.LazyFrame:
    raw = pl.scan_csv(
        source,
        has_header=False,
        skip_rows=1 if dialect.header else 0,
        separator=dialect.delimiter,
        quote_char=dialect.quote,
        # Every column as text first: types are inferred from all rows, below.
        schema=dict.fromkeys(dialect.names, pl.String),
        null_values=NULL_MARKERS,
        truncate_ragged_lines=True,
        missing_columns="insert",
        raise_if_empty=False,
    )
    if dialect.encoding == "utf-8-sig" and not dialect.header:
        first = dialect.names[0]
        raw = raw.with_columns(pl.col(first).str.strip_prefix("\ufeff"))
    if skipped.rows:
        raw = (
            raw.with_row_index(_ROW)
            .filter(~pl.col(_ROW).is_in(pl.Series(skipped.rows, dtype=pl.UInt32).implode()))
            .drop(_ROW)
        )
    return raw


DATE_FORMATS = ["%Y-%m-%d", "%Y/%m/%d", "%d.%m.%Y", "%d/%m/%Y", "%m/%d/%Y"]
DATETIME_FORMATS = [
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%dT%H:%M:%S%.f%#z",
    "%Y-%m-%d %H:%M:%S%.f%#z",
]
SAMPLE_ROWS = 1000
DECIMAL_COMMA = "decimal_comma"
_POINT = ("int", "float")


def _candidates(col: pl.Expr, *, decimal_comma: bool) -> dict[str, pl.Expr]:
    """Each non-temporal type a text column may turn out to be, as a cast that gives
    null where it fails (in the order they are preferred, before date and datetime).
    With `decimal_comma`, "1,5" may be read as 1.5 (a column of plain integers stays
    integer, one with decimal points stays as it was)."""
    stripped = col.str.strip_chars()
    lower = stripped.str.to_lowercase()
    found = {
        "int": stripped.cast(pl.Int64, strict=False),
        "float": stripped.cast(pl.Float64, strict=False),
    }
    if decimal_comma:
        # Only the first comma: "1,234,5" is no number, and stays text.
        comma = stripped.str.replace(",", ".", literal=True).cast(pl.Float64, strict=False)
        found[DECIMAL_COMMA] = comma
    found["bool"] = pl.when(lower.is_in(["true", "false"])).then(lower == "true")
    return found


def _date(col: pl.Expr, fmt: str) -> pl.Expr:
    return col.str.strip_chars().str.to_date(fmt, strict=False)


def _datetime(col: pl.Expr, fmt: str) -> pl.Expr:
    return col.str.strip_chars().str.to_datetime(fmt, strict=False, time_unit="us")


def _plausible(raw: pl.LazyFrame, *, decimal_comma: bool) -> dict[str, dict[str, pl.Expr]]:
    """Per column, the candidate casts that read every value of the first rows.

    Only these are checked over the whole file, so a text column costs no casts at all.
    Date and time formats are fixed from the sample too: parsing without a format makes
    polars guess per value, which is slow on a column that is not temporal. Two queries
    over the sample in all, whatever the width: each query has a fixed cost far above
    its work on a thousand rows.
    """
    sample = raw.head(SAMPLE_ROWS).collect()
    names = sample.columns
    cols = [pl.col(name) for name in names]
    base = [_candidates(col, decimal_comma=decimal_comma) for col in cols]
    first: list[pl.Expr] = []
    for i, col in enumerate(cols):
        first += [
            col.count().alias(f"n{i}"),
            col.str.strip_chars().str.contains(r"^\d").all().alias(f"t{i}"),
            *(cast.count().alias(f"{kind}{i}") for kind, cast in base[i].items()),
        ]
    counts = sample.select(first).row(0, named=True)
    # Formats are tried only on columns whose every value starts with a digit.
    temporal = [i for i in range(len(names)) if counts[f"n{i}"] and counts[f"t{i}"]]
    second: list[pl.Expr] = []
    for i in temporal:
        parse = cols[i].str.strip_chars().str
        second += [_date(cols[i], f).count().alias(f"d{i}:{f}") for f in DATE_FORMATS]
        for f in DATETIME_FORMATS:
            # A format is chosen by how polars reads it unasked; the candidate's own
            # cast (microseconds) must then read the values too.
            second.append(parse.to_datetime(f, strict=False).count().alias(f"dt{i}:{f}"))
            second.append(_datetime(cols[i], f).count().alias(f"us{i}:{f}"))
    parsed = sample.select(second).row(0, named=True) if second else {}
    plausible: dict[str, dict[str, pl.Expr]] = {}
    for i, name in enumerate(names):
        n = counts[f"n{i}"]
        found = {kind: cast for kind, cast in base[i].items() if counts[f"{kind}{i}"] == n}
        if i in temporal:
            date = next((f for f in DATE_FORMATS if parsed[f"d{i}:{f}"] == n), None)
            if date is not None:
                found["date"] = _date(cols[i], date)
            datetime = next((f for f in DATETIME_FORMATS if parsed[f"dt{i}:{f}"] == n), None)
            if datetime is not None and parsed[f"us{i}:{datetime}"] == n:
                found["datetime"] = _datetime(cols[i], datetime)
        plausible[name] = found
    return plausible


def _typed(
    raw: pl.LazyFrame, *, count_replaced: bool, decimal_comma: bool = False
) -> tuple[pl.LazyFrame, int, bool]:
    """The narrowest type each column's every value casts to; rows with invalid bytes;
    whether some column was read with decimal commas."""
    names = raw.collect_schema().names()
    candidates = _plausible(raw, decimal_comma=decimal_comma)
    exprs = []
    for i, name in enumerate(names):
        exprs.append(pl.col(name).count().alias(f"n{i}"))
        exprs += [
            cast.count().alias(f"{kind}{i}")
            for kind, cast in candidates[name].items()
            if kind != DECIMAL_COMMA  # counted after, where it may be needed
        ]
    if count_replaced:
        replaced = (pl.col(n).str.contains("\ufffd", literal=True) for n in names)
        exprs.append(pl.any_horizontal(replaced).sum().alias("replaced"))
    counts = raw.select(exprs).collect(engine=ENGINE).row(0, named=True)
    counts |= _decimal_counts(raw, candidates, counts)
    casts = []
    commas = False
    for i, name in enumerate(names):
        present = counts[f"n{i}"]
        kind, chosen = next(
            (
                (kind, cast)
                for kind, cast in candidates[name].items()
                if present and counts.get(f"{kind}{i}") == present
            ),
            ("text", pl.col(name)),
        )
        commas |= kind == DECIMAL_COMMA
        casts.append(chosen.alias(name))
    return raw.select(casts), int(counts.get("replaced") or 0), commas


def _decimal_counts(
    raw: pl.LazyFrame, candidates: dict[str, dict[str, pl.Expr]], counts: dict[str, Any]
) -> dict[str, int]:
    """How many values read with a decimal comma, in the columns where that could still
    decide the type (no integer or float reading held for every value); in one more
    pass over those columns alone, which most files never need. A column counts as
    read so only if some value has other than three digits after its comma: "1,234"
    alone may group thousands as well."""
    exprs = []
    for i, (name, found) in enumerate(candidates.items()):
        cast, present = found.get(DECIMAL_COMMA), counts[f"n{i}"]
        # Preferred to it (see `_candidates`): a column they read is no question.
        if cast is None or not present or any(counts.get(f"{k}{i}") == present for k in _POINT):
            continue
        decimal = pl.col(name).str.strip_chars().str.contains(r",(\d{1,2}|\d{4,})$").any()
        exprs.append(pl.when(decimal).then(cast.count()).otherwise(-1).alias(f"{DECIMAL_COMMA}{i}"))
    if not exprs:
        return {}
    return dict(raw.select(exprs).collect(engine=ENGINE).row(0, named=True))


def _flat(frame: pl.LazyFrame) -> pl.LazyFrame:
    """Nested values (lists, structs) as their JSON text, profiled like any text column; and
    the types CSV can not hold as something it can: bytes as hex, durations as seconds."""
    exprs = []
    for name, dtype in frame.collect_schema().items():
        if dtype == pl.Binary:
            exprs.append(pl.col(name).bin.encode("hex").alias(name))
        elif dtype == pl.Duration:
            exprs.append((pl.col(name).dt.total_microseconds() / 1e6).alias(name))
        elif dtype.is_nested():
            # json_encode works on structs only: wrap, encode, then unwrap `{"v":` ... `}`.
            wrapped = pl.struct(pl.col(name).alias("v")).struct.json_encode()
            exprs.append(
                pl.when(pl.col(name).is_null())
                .then(None)
                .otherwise(wrapped.str.slice(5).str.strip_suffix("}"))
                .alias(name)
            )
        else:
            exprs.append(pl.col(name))
    return frame.select(exprs)


def _kind(mime: str) -> str:
    return {NDJSON: "JSON Lines", PARQUET: "Parquet", TSV: "TSV"}.get(mime, "CSV")


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
