"""detect_mime judges files by their bytes."""

from __future__ import annotations

import gzip
import struct
import zlib

import pytest

from actors.processors.detect import (
    HEAD_SIZE,
    SNIFF_LINES,
    SNIFF_SIZE,
    detect_mime,
    sniff_delimiter,
    sniff_quote,
    sniff_sample,
    sniff_table,
)


def png() -> bytes:
    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr
    return b"\x89PNG\r\n\x1a\n" + chunk + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))


def test_png() -> None:
    assert detect_mime(png()) == "image/png"


def test_gzip_of_csv_is_gzip() -> None:
    assert detect_mime(gzip.compress(b"a,b\n1,2\n")) == "application/gzip"


def test_empty() -> None:
    assert detect_mime(b"") == "application/x-empty"


def test_binary() -> None:
    assert detect_mime(bytes(range(256)) * 4) == "application/octet-stream"


@pytest.mark.parametrize(
    ("head", "mime"),
    [
        (b"a,b,c\n1,2,3\n4,5,6\n", "text/csv"),
        (b"a;b\n1;2\n3;4\n", "text/csv"),
        (b"a|b\n1|2\n3|4\n", "text/csv"),
        (b"a\tb\tc\n1\t2\t3\n", "text/tab-separated-values"),
        ("\ufeffname,city\r\nAnna,Zürich\r\nBo,東京\r\n".encode(), "text/csv"),
        ("name;city\nJosé;Málaga\n".encode("latin-1"), "text/csv"),
        (b'id,text\n1,"has, comma"\n2,"two\nlines"\n3,plain\n', "text/csv"),
        # A CSV header starting "BM" matches filetype's bitmap signature; text must win.
        (b"BMI,age\n21.5,40\n", "text/csv"),
        (b"Just a note.\nNothing tabular here\n", "text/plain"),
        (b"Hello, world\nno comma on this line\n", "text/plain"),
        (b"single\ncolumn\n", "text/plain"),
        (b"%PDF-1.7\n1 0 obj\n", "application/pdf"),
    ],
)
def test_text_kinds(head: bytes, mime: str) -> None:
    assert detect_mime(head) == mime


def test_head_cut_mid_character_and_line() -> None:
    body = "".join(f"{i},naïve café {i},{i * 0.5}\n" for i in range(5000)).encode()
    head = (b"id,label,value\n" + body)[:HEAD_SIZE]
    # Make sure the cut really splits a multi-byte character.
    while head[-1] < 0x80:
        head = head[:-1]
    assert detect_mime(head) == "text/csv"


def test_head_cut_inside_quoted_field() -> None:
    rows = "".join(f'{i},"line one\nline two, {i}"\n' for i in range(3000))
    head = ("id,text\n" + rows).encode()[:HEAD_SIZE]
    assert detect_mime(head) == "text/csv"


def test_sniff_delimiter_restricted() -> None:
    assert sniff_delimiter("a:b\n1:2\n3:4\n") is None
    assert sniff_delimiter("a,b\n1,2\n") == ","


def test_the_sniffer_reads_a_bounded_sample() -> None:
    narrow = "".join(f"{i},{i * 2}\n" for i in range(20_000))[:HEAD_SIZE]
    sample = sniff_sample(narrow)
    assert 0 < len(sample) <= SNIFF_SIZE
    assert sample.endswith("\n")
    assert narrow.startswith(sample)
    # A wide table's sample still holds SNIFF_LINES whole lines.
    wide = "".join(",".join(str(i + j) for j in range(400)) + "\n" for i in range(40))
    assert sniff_sample(wide).count("\n") == SNIFF_LINES
    # Lines ended by CR alone are cut as well, not read whole.
    old_mac = narrow.replace("\n", "\r")
    assert len(sniff_sample(old_mac)) <= SNIFF_SIZE


def test_a_delimiter_is_checked_over_the_whole_head() -> None:
    # Two fields per record for the sampled lines, three further on: no delimiter holds.
    early = "a;b\n" + "1;2\n" * (2 * SNIFF_SIZE // 4)
    assert sniff_delimiter(early) == ";"
    assert sniff_delimiter(early + "3;4;5\n" * 10) is None


@pytest.mark.parametrize(
    "text",
    [
        "id,note\n" + "".join(f'{i},"a, b {i}"\n' for i in range(40)),
        "id;note\n" + "".join(f"{i};'a; b {i}'\n" for i in range(40)),
        "a|b|c\n" + "1|2|3\n" * 40,
        "name,said\n" + "".join(f"{i},it's {i}\n" for i in range(40)),
    ],
)
def test_the_quote_sniffed_with_the_delimiter_is_sniff_quotes_own(text: str) -> None:
    sniffed = sniff_table(text)
    assert sniffed.delimiter is not None
    assert sniffed.quote == sniff_quote(text, sniffed.delimiter)
