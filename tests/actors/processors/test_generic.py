"""The generic processor: upload facts for any file, encoding and lines for text."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from actors.processors import generic
from actors.processors.base import FileInfo
from actors.processors.generic import GenericProcessor
from schemas.results import FileResult


def run(tmp_path: Path, content: bytes, mime: str = "text/plain") -> FileResult:
    path = tmp_path / "file"
    path.write_bytes(content)
    out = tmp_path / "out"
    out.mkdir()
    info = FileInfo(
        filename="file",
        size=len(content),
        sha256=hashlib.sha256(content).hexdigest(),
        mime=mime,
    )
    result = GenericProcessor().run(path, info, out)
    assert (result.size, result.sha256, result.mime) == (info.size, info.sha256, mime)
    assert list(out.iterdir()) == []
    return result


@pytest.mark.parametrize(
    ("content", "encoding", "lines"),
    [
        (b"one\ntwo\nthree\n", "utf-8", 3),
        ("naïve\n€uro\n".encode(), "utf-8", 2),
        (b"\xef\xbb\xbfa,b\n1,2\n", "utf-8-sig", 2),
        (b"caf\xe9\n", "latin-1", 1),
        (b"one\ntwo", "utf-8", 2),
        (b"no newline at all", "utf-8", 1),
        (b"\n", "utf-8", 1),
        (b"\n\n\n", "utf-8", 3),
        (b"", "utf-8", 0),
        # Only "\n" ends a line.
        (b"a\r\nb\rc", "utf-8", 2),
        # A multi-byte sequence cut off by the end of the file.
        (b"caf\xc3", "latin-1", 1),
        # A byte order mark before bytes that are not UTF-8: the mark is Latin-1 text too.
        (b"\xef\xbb\xbfcaf\xe9\n", "latin-1", 1),
    ],
)
def test_text(tmp_path: Path, content: bytes, encoding: str, lines: int) -> None:
    result = run(tmp_path, content)
    assert (result.encoding, result.lines) == (encoding, lines)


@pytest.mark.parametrize(
    "mime", ["text/csv", "application/json", "application/x-ndjson", "text/plain; charset=utf-8"]
)
def test_text_types(tmp_path: Path, mime: str) -> None:
    result = run(tmp_path, b'{"a": 1}\n{"a": 2}\n', mime)
    assert (result.encoding, result.lines) == ("utf-8", 2)


@pytest.mark.parametrize(
    ("content", "encoding", "lines"),
    [
        # A character split between chunks is still UTF-8.
        ("ab€\n€\n€".encode(), "utf-8", 3),
        # So is a byte order mark.
        (b"\xef\xbb\xbfab\n", "utf-8-sig", 1),
        # Invalid bytes in a later chunk.
        (b"abcdef\n\xe9\n", "latin-1", 2),
        # A final chunk holding only the last newline.
        (b"abc\n", "utf-8", 1),
    ],
)
def test_across_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: bytes, encoding: str, lines: int
) -> None:
    monkeypatch.setattr(generic, "CHUNK_SIZE", 3)
    result = run(tmp_path, content)
    assert (result.encoding, result.lines) == (encoding, lines)


def test_large_file(tmp_path: Path) -> None:
    line = "row,ü,€\n".encode()
    count = 2 * generic.CHUNK_SIZE // len(line) + 7
    result = run(tmp_path, line * count + b"tail", "text/csv")
    assert (result.encoding, result.lines) == ("utf-8", count + 1)


@pytest.mark.parametrize("mime", ["application/octet-stream", "image/png", "application/x-empty"])
def test_binary(tmp_path: Path, mime: str) -> None:
    result = run(tmp_path, b"\x00\x01\n\xff", mime)
    assert (result.encoding, result.lines) == (None, None)


def test_accepts_everything() -> None:
    assert GenericProcessor().accepts("application/x-whatever")
