"""Which records of a delimited file are malformed (a field count unlike the header's) or blank.

polars pads short records and truncates long ones without saying so, so the records are
counted separately here, over the raw lines, in two streaming passes that keep only
line numbers. A line with an odd number of quote characters opens or closes a quoted
field; the lines between such a pair belong to one record (a newline inside quotes) and
are few, so they are parsed with the `csv` module. Every other line is one record, and
its fields are the delimiters outside quoted spans plus one.
"""

from __future__ import annotations

import bisect
import csv
import io
import re
from pathlib import Path
from typing import Final

import msgspec
import polars as pl

from actors.errors import BadFile

MAX_SKIPPED = 1_000_000
"""More malformed or blank records than this and the file is not a table worth profiling."""
MAX_SPANNING_LINES = 5_000_000
"""Lines inside multi-line records that are re-parsed one by one."""
ENGINE: Final = "streaming"


class Skipped(msgspec.Struct, frozen=True, kw_only=True):
    rows: list[int]
    """Data row numbers (0-based, header excluded) to leave out, in order."""
    bad: int
    """How many of them are malformed; the rest are blank lines."""


def skipped_rows(source: Path, *, delimiter: str, quote: str, width: int, header: bool) -> Skipped:
    lines = pl.scan_lines(source).with_row_index("i")
    line = pl.col("line")
    odd = line.str.count_matches(quote, literal=True) % 2 == 1
    try:
        toggles = lines.filter(odd).select("i").collect(engine=ENGINE)["i"].to_list()
        # Lines from an opening toggle to its closing one form one record each.
        spans = [(toggles[k], toggles[k + 1]) for k in range(0, len(toggles) - 1, 2)]
        if len(toggles) % 2:  # a quote left open runs to the end of the file
            spans.append((toggles[-1], _line_count(lines) - 1))
        spanned = sum(end - start + 1 for start, end in spans)
        if spanned > MAX_SPANNING_LINES:
            raise BadFile(
                f"{spanned:,} lines inside quoted fields (the limit is {MAX_SPANNING_LINES:,})"
            )
        span_lines = [i for start, end in spans for i in range(start, end + 1)]
        in_span = pl.col("i").is_in(pl.Series(span_lines, dtype=pl.UInt32).implode())
        q = re.escape(quote)
        outside = line.str.replace_all(f"{q}[^{q}]*{q}", "")
        blank = line.str.strip_chars().str.len_bytes() == 0
        singles = (
            lines.filter(~in_span)
            .select(
                "i",
                blank=blank,
                bad=~blank & (outside.str.count_matches(delimiter, literal=True) != width - 1),
            )
            .filter(pl.col("blank") | pl.col("bad"))
            .collect(engine=ENGINE)
        )
        span_text = (
            lines.filter(in_span).select("i", "line").collect(engine=ENGINE) if spans else None
        )
    except pl.exceptions.PolarsError as exc:
        raise BadFile(f"could not read the lines of the file: {exc}") from exc

    # Continuation lines (after a record's first line) do not start records of their own.
    continuations = [i for start, end in spans for i in range(start + 1, end + 1)]  # sorted
    first_data = 1 if header else 0

    def record(i: int) -> int:
        return i - bisect.bisect_left(continuations, i) - first_data

    flagged: dict[int, bool] = {}  # record -> malformed (else blank)
    for i, is_blank, is_bad in singles.iter_rows():
        if i >= first_data:
            flagged[record(i)] = bool(is_bad) and not is_blank
    if span_text is not None:
        text = dict(span_text.iter_rows())
        for start, end in spans:
            if start < first_data:
                continue
            joined = "\n".join(text[i] for i in range(start, end + 1))
            fields = _fields(joined, delimiter, quote)
            if fields != width:
                flagged[record(start)] = True
    if len(flagged) > MAX_SKIPPED:
        raise BadFile(
            f"{len(flagged):,} malformed or blank rows (the limit is {MAX_SKIPPED:,}): "
            "this does not look like a table"
        )
    return Skipped(rows=sorted(flagged), bad=sum(flagged.values()))


def _line_count(lines: pl.LazyFrame) -> int:
    return int(lines.select(pl.len()).collect(engine=ENGINE).item())


def _fields(record: str, delimiter: str, quote: str) -> int:
    try:
        parsed = next(csv.reader(io.StringIO(record), delimiter=delimiter, quotechar=quote), [])
    except csv.Error:
        return -1
    return len(parsed)
