"""Content sniffing: what a file is, judged from its first bytes rather than the client's claim."""

from __future__ import annotations

import codecs
import csv
import io
import re
from typing import NamedTuple

import filetype
import msgspec

HEAD_SIZE = 64 * 1024
"""How many leading bytes callers read before calling `detect_mime`."""

# How much of the head `csv.Sniffer` reads: SNIFF_SIZE characters, or more to hold
# SNIFF_LINES lines of a wide table (its header guess reads 20 rows). Its regular
# expressions and per-line counts run in Python, and cost milliseconds per 10 KB; what
# it names (delimiter, quote) is checked over the whole head by the C `csv.reader`.
SNIFF_SIZE = 4 * 1024
SNIFF_LINES = 32
_LINE_END = re.compile(r"\r\n?|\n")

EMPTY = "application/x-empty"
BINARY = "application/octet-stream"
PARQUET = "application/vnd.apache.parquet"
CSV = "text/csv"
TSV = "text/tab-separated-values"
PLAIN = "text/plain"
NDJSON = "application/x-ndjson"

DELIMITERS = ",\t;|"

# Formats whose signatures are printable text: when filetype names one of these we trust it
# even though the bytes would also pass as text.
_TEXTUAL_FORMATS = frozenset({"application/pdf", "application/rtf", "application/postscript"})

# C0 controls and DEL, minus tab, LF and CR. Multi-byte UTF-8 sequences only use bytes >= 0x80,
# so this test means the same for UTF-8 and Latin-1.
_CONTROL_BYTES = bytes(b for b in range(0x20) if b not in b"\t\n\r") + b"\x7f"


def detect_mime(head: bytes) -> str:
    """Return the MIME type of a file from (at most) its first `HEAD_SIZE` bytes."""
    if not head:
        return EMPTY
    kind = filetype.guess(head)
    mime: str | None = kind.mime if kind is not None else None
    text = decode_text(head)
    if text is None:
        if mime is not None:
            return mime
        # filetype has no parquet matcher; the magic alone is enough once the bytes are binary.
        return PARQUET if head.startswith(b"PAR1") else BINARY
    # Weak signatures ("BM" for bitmaps, "MZ" for executables) also start ordinary text
    # such as a CSV header, so text wins unless the match is itself a text-based format.
    if mime in _TEXTUAL_FORMATS:
        return mime
    if _json_lines(text):
        return NDJSON
    delimiter = sniff_delimiter(text)
    if delimiter is None:
        return PLAIN
    return TSV if delimiter == "\t" else CSV


def has_control_bytes(head: bytes) -> bool:
    """Whether `head` holds a control byte no text has (see `_CONTROL_BYTES`): binary."""
    return len(head.translate(None, _CONTROL_BYTES)) != len(head)


def decode_text(head: bytes) -> str | None:
    """Decode `head` as UTF-8 (BOM optional) or else Latin-1; None when it looks binary."""
    if has_control_bytes(head):
        return None
    # An incremental decoder holds back a multi-byte character cut off at the end of the head
    # instead of failing on it.
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    try:
        return decoder.decode(head, final=False)
    except UnicodeDecodeError:
        return head.decode("latin-1")


class Sniffed(NamedTuple):
    delimiter: str | None
    quote: str | None
    """The quote the Sniffer saw, when its own delimiter held (else None: not judged)."""


def sniff_delimiter(text: str, delimiters: str = DELIMITERS) -> str | None:
    """The delimiter that splits every sampled record into the same number (>= 2) of fields."""
    return sniff_table(text, delimiters).delimiter


def sniff_table(text: str, delimiters: str = DELIMITERS) -> Sniffed:
    """`sniff_delimiter`, with the quote character too when the Sniffer's guess held (it
    is then what `sniff_quote` would find: the Sniffer counts quotes whatever the
    delimiters it is given)."""
    sample = _complete_lines(text)
    try:
        sniffed = csv.Sniffer().sniff(sniff_sample(text), delimiters=delimiters)
    except csv.Error:
        sniffed = None
    if sniffed is not None:
        # Checked with the quote it saw: single-quoted fields may hold the delimiter.
        quote = sniffed.quotechar or '"'
        if _field_count(sample, sniffed.delimiter, quote) >= 2:
            return Sniffed(str(sniffed.delimiter), quote)
    # The Sniffer gives up on some regular files (and sometimes guesses wrong), so try each
    # candidate directly and keep the one producing the most fields.
    best, best_width = None, 1
    for delimiter in delimiters:
        width = _field_count(sample, delimiter)
        if width > best_width:
            best, best_width = delimiter, width
    return Sniffed(best, None)


def sniff_quote(text: str, delimiter: str) -> str:
    """The quote character of delimited `text`: `"` unless `'` is seen wrapping fields
    and holds over the whole head where `"` does not."""
    try:
        quote = csv.Sniffer().sniff(sniff_sample(text), delimiters=delimiter).quotechar
    except csv.Error:
        return '"'
    # The Sniffer answers '"' when it saw no quoting at all; apostrophes are common in
    # text, so a single quote seen early must also hold where the sample ends.
    if quote != "'":
        return '"'
    sample = _complete_lines(text)
    if _field_count(sample, delimiter, "'") == 0 and _field_count(sample, delimiter) > 0:
        return '"'
    return quote


def sniff_sample(text: str) -> str:
    """What `csv.Sniffer` reads of `text` (see `SNIFF_SIZE`), in complete lines."""
    cut = len(text)
    for count, end in enumerate(_LINE_END.finditer(text), start=1):
        if count == SNIFF_LINES:
            cut = end.end()
            break
    return _complete_lines(text[: max(SNIFF_SIZE, cut)])


def _json_lines(text: str) -> bool:
    """Every complete line of the head is one JSON object (blank lines aside)."""
    lines = [line for line in _complete_lines(text).splitlines() if line.strip()]
    if not lines or not lines[0].lstrip("\ufeff").startswith("{"):
        return False
    try:
        return all(isinstance(msgspec.json.decode(line.lstrip("\ufeff")), dict) for line in lines)
    except msgspec.DecodeError:
        return False


def _complete_lines(text: str) -> str:
    """Drop a trailing unterminated line, which may have been cut short by the head limit."""
    if text.endswith(("\n", "\r")):
        return text
    cut = text.rfind("\n")
    # Keep short inputs whole: with fewer than two complete lines there is nothing to spare.
    if cut < 0 or text.count("\n", 0, cut) < 1:
        return text
    return text[: cut + 1]


def _field_count(sample: str, delimiter: str, quote: str = '"') -> int:
    """Fields per record when every record agrees, else 0; needs at least two records."""
    try:
        reader = csv.reader(io.StringIO(sample), delimiter=delimiter, quotechar=quote)
        records = [r for r in reader if r]
    except csv.Error:
        return 0
    if len(records) < 2:
        return 0
    # The last record may be a quoted multi-line field cut off by the head limit; judge by the
    # others when there are enough of them.
    if len(records) > 2:
        records.pop()
    width = len(records[0])
    return width if all(len(r) == width for r in records) else 0
