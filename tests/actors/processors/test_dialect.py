"""How `sniff` judges a delimited file's dialect from its head."""

from __future__ import annotations

from pathlib import Path

from actors.processors.detect import SNIFF_SIZE
from actors.processors.dialect import sniff


def test_a_wide_table_without_a_header_is_read_as_data(tmp_path: Path) -> None:
    # Lines longer than half the Sniffer's sample: it must still see enough rows to
    # judge that the numeric first record is data, not a header.
    width = SNIFF_SIZE // 8
    rows = [",".join(f"{(i * 31 + j) % 997}.{j % 10}" for j in range(width)) for i in range(60)]
    assert len(rows[0]) > SNIFF_SIZE // 2
    path = tmp_path / "wide.csv"
    path.write_text("\n".join(rows) + "\n")
    dialect = sniff(path, ",")
    assert (dialect.delimiter, dialect.header) == (",", False)
    assert dialect.names == [f"column_{i + 1}" for i in range(width)]


def test_single_quotes_are_believed_where_they_wrap_fields(tmp_path: Path) -> None:
    path = tmp_path / "quoted.csv"
    path.write_text("id;note\n" + "".join(f"{i};'a; b {i}'\n" for i in range(50)))
    dialect = sniff(path, ",")
    assert (dialect.delimiter, dialect.quote, dialect.header) == (";", "'", True)
    assert dialect.names == ["id", "note"]


def test_single_quotes_seen_early_must_hold_over_the_whole_head(tmp_path: Path) -> None:
    # The Sniffer's sample shows single-quoted fields; further on, double quotes wrap
    # fields holding the delimiter, which only `"` reads as two fields per record.
    early = "".join(f"{i},'x{i}'\n" for i in range(300))
    late = "".join(f'{i},"a, b {i}"\n' for i in range(300, 2000))
    path = tmp_path / "mixed.csv"
    path.write_text("id,s\n" + early + late)
    dialect = sniff(path, ",")
    assert (dialect.delimiter, dialect.quote) == (",", '"')
