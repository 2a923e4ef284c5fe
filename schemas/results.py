"""What processors return: the `result` of a job, carried in its `processed` event.

The union is tagged by `kind`; field names are part of the public contract, so
new fields get defaults and existing ones never change type.
"""

from __future__ import annotations

from typing import Any

import msgspec


class Histogram(msgspec.Struct, frozen=True, kw_only=True):
    """Equal-width bins: `len(edges) == len(counts) + 1`; the last bin includes its right edge."""

    edges: list[float]
    counts: list[int]


class TopValue(msgspec.Struct, frozen=True, kw_only=True):
    value: str
    count: int


class ColumnProfile(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    dtype: str
    null_count: int
    distinct_count: int
    # JSON scalars: numbers for numeric columns, ISO strings for temporal ones, text otherwise.
    min: Any = None
    max: Any = None
    mean: float | None = None
    histogram: Histogram | None = None
    top: list[TopValue] | None = None


class TableResult(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind", tag="table"):
    rows: int
    columns: list[ColumnProfile]
    preview: list[dict[str, Any]]
    delimiter: str = ","


class FileResult(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind", tag="file"):
    size: int
    sha256: str
    mime: str


Result = TableResult | FileResult
