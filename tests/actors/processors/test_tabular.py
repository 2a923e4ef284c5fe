"""TabularProcessor against statistics recomputed with the standard library only."""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import math
import random
import statistics
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec
import pytest

from actors.errors import BadFile
from actors.processors.base import FileInfo
from actors.processors.detect import BINARY, detect_mime
from actors.processors.tabular import TabularProcessor
from schemas.results import ColumnProfile, TableResult

NULLS = {"", "NA", "N/A", "null", "NaN"}
MARKERS = ["", "NA", "N/A", "null", "NaN"]


def write(path: Path, rows: list[list[str]], delimiter: str = ",") -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f, delimiter=delimiter).writerows(rows)
    return path


def run(path: Path, mime: str = "text/csv") -> TableResult:
    info = FileInfo(filename=path.name, size=path.stat().st_size, sha256="0" * 64, mime=mime)
    result = TabularProcessor().run(path, info)
    msgspec.json.encode(result)  # must always be JSON-encodable
    return result


def read_columns(path: Path, delimiter: str = ",") -> dict[str, list[str | None]]:
    """Column name -> raw cells, with the null markers turned into None."""
    with path.open(newline="", encoding="utf-8") as f:
        header, *rows = list(csv.reader(f, delimiter=delimiter))
    return {
        name: [None if row[i] in NULLS else row[i] for row in rows] for i, name in enumerate(header)
    }


def column(result: TableResult, name: str) -> ColumnProfile:
    return next(c for c in result.columns if c.name == name)


def close(a: float | None, b: float | None) -> bool:
    assert a is not None
    assert b is not None
    return math.isclose(a, b, rel_tol=1e-9)


def stdlib_histogram(values: list[float]) -> tuple[list[float], list[int]]:
    lo, hi = min(values), max(values)
    if lo == hi:
        return [float(lo), float(hi)], [len(values)]
    width = (hi - lo) / 10
    counts = [0] * 10
    for v in values:
        counts[min(max(math.floor((v - lo) / width), 0), 9)] += 1
    return [lo + i * width for i in range(10)] + [float(hi)], counts


def check_numeric(profile: ColumnProfile, cells: list[str | None], cast: type) -> None:
    values = [cast(c) for c in cells if c is not None]
    assert profile.dtype == ("int64" if cast is int else "float64")
    assert profile.null_count == len(cells) - len(values)
    assert profile.distinct_count == len(set(values))
    assert profile.min == min(values)
    assert profile.max == max(values)
    assert type(profile.min) is cast
    assert close(profile.mean, statistics.fmean(values))
    assert profile.top is None
    edges, counts = stdlib_histogram([float(v) for v in values])
    assert profile.histogram is not None
    assert profile.histogram.counts == counts
    assert sum(profile.histogram.counts) == len(values)
    assert len(profile.histogram.edges) == len(edges)
    assert all(close(a, b) for a, b in zip(profile.histogram.edges, edges, strict=True))


def check_text(profile: ColumnProfile, cells: list[str | None]) -> None:
    values = [c for c in cells if c is not None]
    assert profile.dtype == "str"
    assert profile.null_count == len(cells) - len(values)
    assert profile.distinct_count == len(set(values))
    assert profile.min == (min(values) if values else None)
    assert profile.max == (max(values) if values else None)
    assert profile.mean is None
    assert profile.histogram is None
    ranked = sorted(Counter(values).items(), key=lambda kv: (-kv[1], kv[0]))[:10]
    assert profile.top is not None
    assert [(t.value, t.count) for t in profile.top] == ranked


def check_preview(result: TableResult, columns: dict[str, list[Any]], rows: int) -> None:
    assert result.rows == rows
    assert len(result.preview) == min(20, rows)
    for i, row in enumerate(result.preview):
        assert list(row) == list(columns)
        for name, cells in columns.items():
            assert row[name] == cells[i], (i, name)


@pytest.fixture
def mixed(tmp_path: Path) -> Path:
    rng = random.Random(7)
    words = ["apple", "banana", "cherry", "date", "elder", "fig", "grape", "kiwi", "lime"]
    words += ["mango", "nectarine", "olive", "Zürich", "naïve", "東京", "😀 smile"]
    rows = [["id", "qty", "price", "name", "note"]]
    for i in range(237):
        qty = MARKERS[i % 5] if i % 9 == 0 else str(rng.randint(-50, 400))
        price = MARKERS[(i + 2) % 5] if i % 7 == 0 else f"{rng.uniform(-10, 1000):.6f}"
        name = MARKERS[i % 5] if i % 11 == 0 else rng.choice(words)
        note = rng.choice(["has, comma", "two\nlines", 'say "hi"', "plain", "a;b|c\td"])
        rows.append([str(i), qty, price, name, note])
    return write(tmp_path / "mixed.csv", rows)


def test_mixed_columns_match_stdlib(mixed: Path) -> None:
    result = run(mixed)
    cells = read_columns(mixed)
    assert result.delimiter == ","
    assert [c.name for c in result.columns] == ["id", "qty", "price", "name", "note"]
    check_numeric(column(result, "id"), cells["id"], int)
    check_numeric(column(result, "qty"), cells["qty"], int)
    check_numeric(column(result, "price"), cells["price"], float)
    check_text(column(result, "name"), cells["name"])
    check_text(column(result, "note"), cells["note"])
    typed: dict[str, list[Any]] = {
        "id": [int(c) for c in cells["id"] if c is not None],
        "qty": [None if c is None else int(c) for c in cells["qty"]],
        "price": [None if c is None else float(c) for c in cells["price"]],
        "name": cells["name"],
        "note": cells["note"],
    }
    check_preview(result, typed, 237)


def test_every_null_marker_keeps_numeric_column_numeric(tmp_path: Path) -> None:
    rows = [["n", "s"]] + [[m, m] for m in MARKERS] + [["1", "x"], ["2.5", "y"], ["4", "x"]]
    path = write(tmp_path / "nulls.csv", rows)
    result = run(path)
    cells = read_columns(path)
    assert column(result, "n").null_count == len(MARKERS)
    check_numeric(column(result, "n"), cells["n"], float)
    check_text(column(result, "s"), cells["s"])


def test_all_null_and_constant_columns(tmp_path: Path) -> None:
    rows = [["empty", "const", "label"]]
    rows += [[MARKERS[i % 5], "42", f"r{i}"] for i in range(30)]
    path = write(tmp_path / "degenerate.csv", rows)
    result = run(path)
    empty = column(result, "empty")
    assert empty.null_count == 30
    assert empty.distinct_count == 0
    assert (empty.min, empty.max, empty.mean, empty.histogram) == (None, None, None, None)
    const = column(result, "const")
    assert const.histogram is not None
    assert const.histogram.edges == [42.0, 42.0]
    assert const.histogram.counts == [30]
    check_numeric(const, read_columns(path)["const"], int)
    check_preview(
        result, {"empty": [None] * 30, "const": [42] * 30, "label": [r[2] for r in rows[1:]]}, 30
    )


@pytest.mark.parametrize(
    ("delimiter", "mime"),
    [("\t", "text/tab-separated-values"), (";", "text/csv"), ("|", "text/csv")],
)
def test_other_delimiters(tmp_path: Path, delimiter: str, mime: str) -> None:
    rows = [["city", "pop", "share"]]
    rows += [["Köln", "1084831", "1,5"], ["São Paulo", "12325232", "2,25"], ["Köln", "NA", ""]]
    rows += [["a,b", "7", "3"]]
    path = write(tmp_path / "data.txt", rows, delimiter)
    result = run(path, mime)
    cells = read_columns(path, delimiter)
    assert result.delimiter == delimiter
    check_text(column(result, "city"), cells["city"])
    check_numeric(column(result, "pop"), cells["pop"], int)
    check_text(column(result, "share"), cells["share"])  # decimal commas stay text


def test_single_column(tmp_path: Path) -> None:
    rows = [["value"]] + [[str(v)] for v in [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5]] + [["NA"]]
    path = write(tmp_path / "one.csv", rows)
    result = run(path)
    assert len(result.columns) == 1
    check_numeric(result.columns[0], read_columns(path)["value"], int)


def test_top_orders_ties_by_value(tmp_path: Path) -> None:
    counts = {"pear": 3, "apple": 3, "fig": 5, "Banana": 3, "kiwi": 1}
    counts |= {f"w{i:02}": 2 for i in range(10)}
    rows = [["fruit"]] + [[k] for k, n in counts.items() for _ in range(n)]
    path = write(tmp_path / "fruit.csv", rows)
    result = run(path)
    top = result.columns[0].top
    assert top is not None
    assert [t.value for t in top[:4]] == ["fig", "Banana", "apple", "pear"]
    assert len(top) == 10
    check_text(result.columns[0], read_columns(path)["fruit"])


def test_dates_are_iso_strings(tmp_path: Path) -> None:
    days = [dt.date(2024, 1, 1) + dt.timedelta(days=d) for d in (40, 3, 300)]
    rows = [["day"]] + [[d.isoformat()] for d in days] + [["NA"]]
    result = run(write(tmp_path / "days.csv", rows))
    day = result.columns[0]
    assert day.dtype == "date"
    assert (day.min, day.max) == (min(days).isoformat(), max(days).isoformat())
    assert (day.mean, day.histogram, day.top) == (None, None, None)
    assert [r["day"] for r in result.preview] == [d.isoformat() for d in days] + [None]


def test_infinity_stays_encodable(tmp_path: Path) -> None:
    rows = [["x"], ["1.5"], ["inf"], ["2.5"], ["-inf"], ["3.5"]]
    result = run(write(tmp_path / "inf.csv", rows))
    x = result.columns[0]
    assert x.dtype == "float64"
    assert x.histogram is not None
    # Infinities are left out of the bins; the finite values still fill them.
    assert x.histogram.counts == stdlib_histogram([1.5, 2.5, 3.5])[1]


def test_header_only_has_no_rows(tmp_path: Path) -> None:
    path = tmp_path / "header.csv"
    path.write_text("a,b\n")
    result = run(path)
    assert result.rows == 0
    assert result.preview == []
    assert [c.null_count for c in result.columns] == [0, 0]


@pytest.mark.parametrize("content", [b"", b"\n", b"  \r\n"])
def test_empty_file_is_bad(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(content)
    with pytest.raises(BadFile, match="empty file"):
        run(path)


def test_ragged_rows_are_bad(tmp_path: Path) -> None:
    path = tmp_path / "ragged.csv"
    path.write_text("a,b\n1,2\n3,4,5\n")
    with pytest.raises(BadFile, match=r"^could not parse as CSV: "):
        run(path)


@pytest.mark.parametrize("seed", range(8))
def test_binary_garbage_named_csv(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    # Odd seeds avoid NUL and control bytes so the garbage passes as Latin-1 text.
    alphabet = (
        bytes(range(256))
        if seed % 2 == 0
        else bytes([9, 10, 13, *range(32, 127), *range(128, 256)])
    )
    data = bytes(rng.choice(alphabet) for _ in range(5000))
    path = tmp_path / "garbage.csv"
    path.write_bytes(data)
    if seed % 2 == 0:
        assert detect_mime(data) == BINARY
    # Whatever the detector said, the processor must answer with a result or BadFile.
    with contextlib.suppress(BadFile):
        run(path)
