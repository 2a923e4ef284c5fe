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


class TimeHistogram(msgspec.Struct, frozen=True, kw_only=True):
    """`Histogram` over dates or times: edges are ISO 8601 strings."""

    edges: list[str]
    counts: list[int]


class TopValue(msgspec.Struct, frozen=True, kw_only=True):
    value: str
    count: int


class Quantiles(msgspec.Struct, frozen=True, kw_only=True):
    """Exact quantiles, linearly interpolated between ranks (as numpy and pandas do)."""

    p5: float
    p25: float
    p50: float
    p75: float
    p95: float


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
    # Added in the second version of the profile.
    count: int = 0
    """Non-null values."""
    distinct_exact: bool = True
    """False when `distinct_count` is an estimate (HyperLogLog, above `distinct_bound`)."""
    std: float | None = None
    """Sample standard deviation (n - 1), as pandas computes it."""
    quantiles: Quantiles | None = None
    time_histogram: TimeHistogram | None = None
    top_exact: bool = True
    """False when `top` was drawn from candidates (high-cardinality text); counts stay exact."""
    min_length: int | None = None
    max_length: int | None = None
    mean_length: float | None = None


class TableResult(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind", tag="table"):
    rows: int
    columns: list[ColumnProfile]
    preview: list[dict[str, Any]]
    delimiter: str = ","
    # Added in the second version of the profile.
    format: str = "csv"
    """csv, jsonl or parquet."""
    encoding: str = "utf-8"
    """utf-8, utf-8-sig (with a byte order mark) or latin-1, as sniffed."""
    header: bool = True
    quote: str = '"'
    duplicate_rows: int = 0
    """Rows equal to an earlier row (all fields, as parsed)."""
    bad_rows: int = 0
    """Rows skipped because their field count differed from the header's."""
    replaced_rows: int = 0
    """Rows holding bytes invalid in the encoding, kept with U+FFFD in their place."""
    distinct_bound: int = 0
    """Distinct counts up to this bound are exact; above it they are estimates."""
    decimal_comma: bool = False
    """Some number column was written with decimal commas ("1,5"), as in a file
    separated by semicolons or tabs; read as numbers. Never in a comma-separated file."""


class ImageResult(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind", tag="image"):
    width: int
    """After the EXIF orientation is applied."""
    height: int
    format: str
    """PNG, JPEG, WEBP or GIF."""
    mode: str
    """Pillow's mode: RGB, RGBA, L, P, ..."""
    frames: int = 1
    orientation: int = 1
    """The EXIF orientation tag (1 to 8) that was applied; 1 means none."""
    exif: dict[str, str] = {}
    thumbnail: str | None = None
    """Name of the WebP thumbnail artifact."""


class FileResult(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind", tag="file"):
    size: int
    sha256: str
    mime: str
    # For text files only.
    encoding: str | None = None
    lines: int | None = None


class CustomResult(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind", tag="custom"):
    """What a plugin processor returned, when it is none of the kinds above."""

    type: str
    """The plugin's struct name."""
    data: dict[str, Any]


Result = TableResult | ImageResult | FileResult | CustomResult
RESULT_KINDS = (TableResult, ImageResult, FileResult, CustomResult)


class Artifact(msgspec.Struct, frozen=True, kw_only=True):
    """A file a processor produced next to its result (an export, a chart, a thumbnail)."""

    name: str
    key: str
    content_type: str
    size: int
