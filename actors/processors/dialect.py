"""How a delimited text file is written: encoding, delimiter, quote, header, column names."""

from __future__ import annotations

import codecs
import csv
import io
from pathlib import Path

import msgspec

from actors.errors import BadFile
from actors.processors.detect import (
    HEAD_SIZE,
    has_control_bytes,
    sniff_quote,
    sniff_sample,
    sniff_table,
)

BOM = codecs.BOM_UTF8
TRANSCODE_CHUNK = 4 * 1024 * 1024


class Dialect(msgspec.Struct, frozen=True, kw_only=True):
    encoding: str
    """utf-8, utf-8-sig or latin-1."""
    delimiter: str
    quote: str
    header: bool
    names: list[str]


def sniff(source: Path, fallback_delimiter: str) -> Dialect:
    """Judge the dialect from the first `HEAD_SIZE` bytes."""
    with source.open("rb") as f:
        head = f.read(HEAD_SIZE)
    if not head.strip().strip(BOM):
        raise BadFile("empty file")
    if b"\x00" in head:
        raise BadFile("not a text file: binary content where CSV was expected")
    if has_control_bytes(head):
        raise BadFile("not a text file: control bytes where CSV was expected")
    encoding = _encoding(head)
    # Decoded as the file will be read, so that header names come out as they will in the
    # profile; an incremental decoder holds back a character cut off by the head limit.
    text = codecs.getincrementaldecoder(encoding)(errors="replace").decode(head, final=False)
    sniffed = sniff_table(text)
    delimiter = sniffed.delimiter or fallback_delimiter
    quote = sniffed.quote or sniff_quote(text, delimiter)
    first = _first_record(text, delimiter, quote)
    if not first:
        raise BadFile("empty file")
    header = _has_header(text, first)
    names = _unique_names(first) if header else [f"column_{i + 1}" for i in range(len(first))]
    return Dialect(encoding=encoding, delimiter=delimiter, quote=quote, header=header, names=names)


def _encoding(head: bytes) -> str:
    if head.startswith(BOM):
        return "utf-8-sig"
    text = codecs.getincrementaldecoder("utf-8")(errors="replace").decode(head, final=False)
    invalid = text.count("\ufffd")
    if not invalid:
        return "utf-8"
    # Latin-1 text is almost never valid UTF-8 beyond ASCII, so UTF-8 sequences that do
    # decode outnumbering the invalid bytes mean a UTF-8 file with a few bad bytes.
    decoded = sum(1 for ch in text if ord(ch) > 0x7F) - invalid
    return "utf-8" if decoded and decoded >= invalid else "latin-1"


def _first_record(text: str, delimiter: str, quote: str) -> list[str]:
    reader = csv.reader(io.StringIO(text), delimiter=delimiter, quotechar=quote)
    try:
        for record in reader:
            if record:
                return record
    except csv.Error as exc:
        # Bytes that are text but no table: say so, rather than "empty file".
        raise BadFile(f"could not parse as CSV: the first record is malformed ({exc})") from exc
    return []


def _has_header(text: str, first: list[str]) -> bool:
    """A first record without a single number is a header; otherwise ask the Sniffer."""
    if not any(_numeric(field) for field in first):
        # Headers are names; data rows of all-text tables are what the Sniffer misjudges.
        return True
    sample = sniff_sample(text).replace("\r\n", "\n")
    if sample.count("\n") < 2:
        # A single line is a header of an empty table far more often than one row of data.
        return True
    try:
        return csv.Sniffer().has_header(sample)
    except csv.Error:
        return True


def _numeric(field: str) -> bool:
    try:
        float(field.strip())
    except ValueError:
        return False
    return True


def _unique_names(record: list[str]) -> list[str]:
    """Header names, blank ones named by position and repeats numbered, so all are distinct."""
    names: list[str] = []
    seen: set[str] = set()
    for i, raw in enumerate(record):
        base = raw.strip() or f"column_{i + 1}"
        name, n = base, 1
        while name in seen:
            n += 1
            name = f"{base}_{n}"
        seen.add(name)
        names.append(name)
    return names


def readable(source: Path, encoding: str, work: Path) -> tuple[Path, bool]:
    """A UTF-8 version of `source` (itself when it already is) and whether bytes were replaced.

    polars reads only UTF-8, and its line reader refuses invalid bytes, so a Latin-1 file
    is transcoded and a UTF-8 file with invalid bytes is rewritten with U+FFFD in their place.
    """
    if encoding == "latin-1":
        return _transcode(source, work / "utf8.csv", "latin-1"), False
    decoder = codecs.getincrementaldecoder("utf-8")()
    with source.open("rb") as f:
        try:
            while chunk := f.read(TRANSCODE_CHUNK):
                # ASCII is valid UTF-8 and far the most common case: skip decoding it.
                if not chunk.isascii():
                    decoder.decode(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return _transcode(source, work / "utf8.csv", "utf-8"), True
    return source, False


def _transcode(source: Path, target: Path, encoding: str) -> Path:
    decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
    with source.open("rb") as src, target.open("wb") as dst:
        while chunk := src.read(TRANSCODE_CHUNK):
            dst.write(decoder.decode(chunk).encode("utf-8"))
        dst.write(decoder.decode(b"", final=True).encode("utf-8"))
    return target
