"""TabularProcessor on malformed input: it answers with a correct profile of what is readable,
or with `BadFile`, never with any other exception.

Ragged rows (too few or too many fields) are skipped and counted in `bad_rows`; blank lines
are skipped and not counted. The expected rows come from the standard library's `csv`
module (`reference_csv`), and the remaining table is checked statistic by statistic with
the same helpers and tolerances as `test_tabular.py`.
"""

from __future__ import annotations

import csv
import io
import random
from pathlib import Path

import polars as pl
import pytest

from actors.errors import BadFile
from actors.processors import ragged
from schemas.results import TableResult
from tests.actors.processors.test_tabular import (
    HEADER,
    NDJSON,
    PARQUET,
    TSV,
    check_table,
    mixed_rows,
    reference_csv,
    run,
    run_full,
    write,
)

# --- ragged rows and blank lines -------------------------------------------------------


def ragged_rows(
    rng: random.Random, rows: list[list[str]], share: float = 0.04
) -> tuple[list[list[str]], int, int]:
    """Rows with fields dropped or added, and blank lines, mixed in; and how many of each."""
    out: list[list[str]] = []
    bad = blank = 0
    for row in rows:
        roll = rng.random()
        if roll < share / 3:
            out.append(row[: rng.randint(1, len(row) - 1)])  # too few
            bad += 1
        elif roll < 2 * share / 3:
            extra = rng.choice(["x", "has, comma", "two\nlines", ""])
            out.append([*row, *[extra] * rng.randint(1, 3)])  # too many
            bad += 1
        elif roll < share:
            out.append(rng.choice([[], ["   "]]))  # a blank (or whitespace-only) line
            blank += 1
        out.append(row)
    return out, bad, blank


@pytest.mark.parametrize(
    ("seed", "delimiter", "newline", "mime"),
    [(1, ",", "\n", "text/csv"), (2, ",", "\r\n", "text/csv"), (3, "\t", "\n", TSV)],
)
def test_ragged_rows_are_skipped_and_counted(
    tmp_path: Path, seed: int, delimiter: str, newline: str, mime: str
) -> None:
    rng = random.Random(seed)
    rows, bad, blank = ragged_rows(rng, mixed_rows(rng, 2500))
    path = write(tmp_path / "ragged.csv", [HEADER, *rows], delimiter, newline)
    ran = run_full(path, mime)
    parsed = reference_csv(path, delimiter)
    assert (parsed.bad, parsed.blank) == (bad, blank)
    assert bad > 20
    assert blank > 10
    assert (ran.result.bad_rows, ran.result.header, ran.result.delimiter) == (bad, True, delimiter)
    check_table(ran, parsed.refs)


def test_ragged_row_after_multiline_records(tmp_path: Path) -> None:
    path = tmp_path / "multi.csv"
    path.write_text(
        "id,name,v\n"
        '1,"a\nb\nc",10\n'
        "2,short\n"  # too few, right after a three-line record
        '3,"y, with comma",30\n'
        '4,"p\nq",40,extra\n'  # too many, itself spanning two lines
        '5,"say ""hi""\n, then go",50\n'
        "6,z,60,\n"  # too many: an empty last field
        '7,"",70\n'
    )
    ran = run_full(path)
    assert ran.result.bad_rows == 3
    assert [row["id"] for row in ran.result.preview] == [1, 3, 5, 7]
    assert ran.result.preview[2]["name"] == 'say "hi"\n, then go'
    parsed = reference_csv(path)
    assert parsed.bad == 3
    check_table(ran, parsed.refs)


def test_blank_lines_are_skipped_not_counted(tmp_path: Path) -> None:
    path = tmp_path / "blank.csv"
    path.write_bytes(
        b"id,name,score\n"
        b"\n"
        b"1,alpha,1.5\r\n"
        b"   \n"
        b"\r\n"
        b'2,"multi\n\nline with a blank line inside",2.5\n'
        b"\t\n"
        b"3,gamma,3.5\n"
        b"\n\n\n"
    )
    ran = run_full(path)
    assert (ran.result.rows, ran.result.bad_rows) == (3, 0)
    assert ran.result.preview[1]["name"] == "multi\n\nline with a blank line inside"
    check_table(ran, reference_csv(path).refs)


def test_only_bad_rows(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("id,name\n1\n2\n3,a,b\n")
    ran = run_full(path)
    assert (ran.result.rows, ran.result.bad_rows, ran.result.preview) == (0, 3, [])
    assert [(c.name, c.count, c.null_count) for c in ran.result.columns] == [
        ("id", 0, 0),
        ("name", 0, 0),
    ]


def test_wide_file_with_ragged_rows(tmp_path: Path) -> None:
    rng = random.Random(77)
    header = [f"c{j}" for j in range(500)]
    rows = [[str(rng.randint(0, 5)) if j % 50 == 0 else "x" for j in range(500)] for _ in range(40)]
    rows[5] = rows[5][:-1]
    rows[17] = [*rows[17], "1"]
    rows[30] = rows[30][:250]
    path = write(tmp_path / "wide.csv", [header, *rows])
    ran = run_full(path)
    assert (ran.result.rows, ran.result.bad_rows, len(ran.result.columns)) == (37, 3, 500)
    check_table(ran, reference_csv(path).refs)


def test_single_column(tmp_path: Path) -> None:
    path = tmp_path / "single.csv"
    path.write_text("value\n1\n\n2\n3,4\n  \n5\nNA\n6\n")
    ran = run_full(path)
    assert (ran.result.rows, ran.result.bad_rows) == (5, 1)
    assert [row["value"] for row in ran.result.preview] == [1, 2, 5, None, 6]
    check_table(ran, reference_csv(path).refs)


# --- header only, empty, binary --------------------------------------------------------


@pytest.mark.parametrize("content", [b"a,b\n", b"a,b", b"a,b\r\n\r\n\n", b"\xef\xbb\xbfa,b\n"])
def test_header_only(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "header.csv"
    path.write_bytes(content)
    ran = run_full(path)
    result = ran.result
    assert (result.rows, result.preview, result.duplicate_rows, result.bad_rows) == (0, [], 0, 0)
    assert [c.name for c in result.columns] == ["a", "b"]
    for column in result.columns:
        assert (column.count, column.null_count, column.distinct_count) == (0, 0, 0)
        assert (column.min, column.max, column.histogram, column.top) == (None, None, None, None)
    assert pl.read_parquet(ran.out / "export.parquet").columns == ["a", "b"]
    assert (ran.out / "export.csv").read_text().splitlines() == ["a,b"]


@pytest.mark.parametrize(
    "content", [b"", b"\n", b"  \r\n", b"\xef\xbb\xbf", b"\xef\xbb\xbf\n\n", b"\t \n \n"]
)
def test_empty_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(content)
    with pytest.raises(BadFile, match=r"^empty file$"):
        run(path)


PRINTABLE = bytes([9, 10, 13, *range(32, 127), *range(128, 256)])


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize(
    ("alphabet", "reason"),
    [
        (bytes(range(256)), r"^not a text file"),
        # No control bytes: it passes as Latin-1 text, and fails as a table.
        (PRINTABLE, r"^could not parse as CSV"),
    ],
    ids=["binary", "printable"],
)
def test_garbage_named_csv(tmp_path: Path, seed: int, alphabet: bytes, reason: str) -> None:
    rng = random.Random(seed)
    path = tmp_path / "garbage.csv"
    path.write_bytes(bytes(rng.choice(alphabet) for _ in range(5000)))
    with pytest.raises(BadFile, match=reason):
        run(path)


def test_invalid_bytes_in_several_rows(tmp_path: Path) -> None:
    """Past the sniffed head: each row with invalid bytes counts once, wherever they are."""
    lines = [f"{i},naïve {i},{i % 7}\n".encode() for i in range(6000)]  # > 64 KiB
    lines[4000] = b"4000,\xff\xfe two bad bytes,1\n"
    lines[5000] = b'5000,"multi\nline \xc3",2\n'  # a cut-off sequence inside a quoted field
    lines[5500] = b"5500,ok,3\xff\n"  # turns the number into text
    path = tmp_path / "bytes.csv"
    path.write_bytes(b"id,text,n\n" + b"".join(lines))
    ran = run_full(path)
    assert (ran.result.encoding, ran.result.replaced_rows, ran.result.bad_rows) == ("utf-8", 3, 0)
    parsed = reference_csv(path)
    assert [r.dtype for r in parsed.refs] == ["int64", "str", "str"]
    check_table(ran, parsed.refs)


def test_lone_carriage_returns(tmp_path: Path) -> None:
    """Classic Mac line ends are not read; the answer is still BadFile."""
    path = tmp_path / "cr.csv"
    path.write_bytes(b"id,name\r1,alpha\r2,beta\r")
    with pytest.raises(BadFile):
        run(path)


# --- quotes ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tail",
    ['3,"never closed\n', '3,"never closed', '3,"never closed\n4,d\n5,e\n', '3,"a""\n'],
    ids=["newline", "no newline", "rows after", "escaped quote"],
)
def test_unterminated_quote_at_the_end(tmp_path: Path, tail: str) -> None:
    path = tmp_path / "open.csv"
    path.write_text("id,name\n1,alpha\n2,beta\n" + tail)
    with pytest.raises(BadFile, match=r"^could not parse as CSV"):
        run(path)


@pytest.mark.parametrize("text", ['1,a"b\n2,c\n', "1,5'10\"\n2,c\n", '1,"a"b\n2,c\n'])
def test_stray_quotes(tmp_path: Path, text: str) -> None:
    path = tmp_path / "stray.csv"
    path.write_text("id,name\n" + text)
    # polars refuses a quote inside an unquoted field, which the csv module would read:
    # a known limitation, pinned here so that a change of behaviour is noticed.
    with pytest.raises(BadFile, match=r"^could not parse as CSV"):
        run(path)


def test_too_many_spanning_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ragged, "MAX_SPANNING_LINES", 5)
    path = tmp_path / "spans.csv"
    path.write_text("id,note\n" + "".join(f'{i},"a\nb\nc"\n' for i in range(3)))
    with pytest.raises(BadFile, match="lines inside quoted fields"):
        run(path)


def test_too_many_skipped_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ragged, "MAX_SKIPPED", 3)
    path = tmp_path / "skips.csv"
    path.write_text("id,name\n1,a\n2\n\n3,c,d\n4\n5,e\n")
    with pytest.raises(BadFile, match="this does not look like a table"):
        run(path)
    monkeypatch.setattr(ragged, "MAX_SKIPPED", 4)
    assert run(path).bad_rows == 3


@pytest.mark.parametrize("seed", range(30))
def test_mutated_csv(tmp_path: Path, seed: int) -> None:
    """Random damage to a valid file: BadFile, or a profile whose rows the csv module agrees
    with (whenever the damage left the header and the delimiter recognisable)."""
    rng = random.Random(seed)
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows([HEADER, *mixed_rows(rng, 120)])
    data = bytearray(buffer.getvalue().encode())
    for _ in range(rng.randint(1, 6)):
        i = rng.randrange(len(data))
        op = rng.choice(["flip", "insert", "delete", "quote", "delimiter", "newline", "cut"])
        if op == "flip":
            data[i] = rng.randrange(256)
        elif op == "insert":
            data[i:i] = bytes([rng.randrange(256)])
        elif op == "delete":
            del data[i : i + rng.randint(1, 20)]
        elif op == "quote":
            data[i:i] = b'"'
        elif op == "delimiter":
            data[i:i] = rng.choice([b",", b";", b"\t"])
        elif op == "newline":
            data[i:i] = rng.choice([b"\n", b"\r\n", b"\n\n"])
        else:
            del data[i:]
    path = tmp_path / "mutated.csv"
    path.write_bytes(bytes(data))
    try:
        result = run(path)
    except BadFile:
        return
    if result.header and (result.delimiter, result.quote, result.encoding) == (",", '"', "utf-8"):
        parsed = reference_csv(path)
        assert (result.rows, result.bad_rows) == (len(parsed.refs[0].values), parsed.bad)


# --- JSON Lines and Parquet ------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "could not parse as JSON Lines"),
        (b"\n", "could not parse as JSON Lines"),
        (b'{"a":1}\n{"a":\n', "could not parse as JSON Lines"),
        (b'{"a":1}\nnot json\n', "could not parse as JSON Lines"),
        (b"[1,2]\n", "could not parse as JSON Lines"),
        (b"{}\n{}\n", "no columns"),
    ],
)
def test_malformed_json_lines(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(content)
    with pytest.raises(BadFile, match=rf"^{reason}"):
        run(path, NDJSON)


def test_json_lines_with_conflicting_types_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "mixed.jsonl"
    path.write_text('{"a":1,"b":1}\n\n{"a":"x","b":2.5}\n{"c":true}\n')
    result = run(path, NDJSON)
    assert result.rows == 3
    assert [(c.name, c.dtype, c.null_count) for c in result.columns] == [
        ("a", "str", 1),
        ("b", "float64", 1),
        ("c", "bool", 2),
    ]


def _parquet_bytes() -> bytes:
    buffer = io.BytesIO()
    pl.DataFrame({"a": list(range(100)), "b": ["x"] * 100}).write_parquet(buffer)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"PAR1" + bytes(100) + b"PAR1",
        _parquet_bytes()[: len(_parquet_bytes()) // 2],
        _parquet_bytes()[:-9] + b"XXXXXXXXX",
        b"a,b\n1,2\n",
    ],
    ids=["empty", "magic only", "truncated", "bad footer", "csv"],
)
def test_malformed_parquet(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.parquet"
    path.write_bytes(content)
    with pytest.raises(BadFile, match=r"^could not parse as Parquet"):
        run(path, PARQUET)


def test_parquet_without_columns(tmp_path: Path) -> None:
    path = tmp_path / "none.parquet"
    pl.DataFrame().write_parquet(path)
    with pytest.raises(BadFile, match=r"^no columns$"):
        run(path, PARQUET)


def test_parquet_without_rows(tmp_path: Path) -> None:
    path = tmp_path / "rows.parquet"
    pl.DataFrame(
        {"a": pl.Series([], dtype=pl.Int64), "s": pl.Series([], dtype=pl.String)}
    ).write_parquet(path)
    result = run(path, PARQUET)
    assert isinstance(result, TableResult)
    assert (result.rows, [c.dtype for c in result.columns]) == (0, ["int64", "str"])
    assert [(c.count, c.histogram, c.quantiles, c.top) for c in result.columns] == [
        (0, None, None, None)
    ] * 2
