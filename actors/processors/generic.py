"""The fallback processor: facts about any file, whatever its content."""

from __future__ import annotations

import codecs
from pathlib import Path
from typing import ClassVar

from actors.processors.base import FileInfo
from schemas.results import FileResult

CHUNK_SIZE = 1024 * 1024

# Text by content even though their type is not text/*.
_TEXT_MIMES = frozenset({"application/json", "application/x-ndjson"})


def is_text(mime: str) -> bool:
    """Whether files of `mime` get a line count and an encoding."""
    base = mime.split(";", 1)[0].strip().lower()
    return base.startswith("text/") or base in _TEXT_MIMES


def profile_text(source: Path) -> tuple[str, int]:
    """The encoding (utf-8-sig, utf-8 or latin-1) and line count of `source`, read in chunks."""
    # utf-8-sig also decodes BOM-less UTF-8, so one pass tells both apart from Latin-1.
    decoder: codecs.IncrementalDecoder | None = codecs.getincrementaldecoder("utf-8-sig")()
    newlines = 0
    first = last = b""
    with source.open("rb") as f:
        while chunk := f.read(CHUNK_SIZE):
            if not first:
                first = chunk
            last = chunk
            newlines += chunk.count(b"\n")
            if decoder is not None:
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError:
                    # Every byte string is valid Latin-1: no need to decode any further.
                    decoder = None
    if decoder is not None:
        try:
            # A multi-byte sequence cut off by the end of the file only fails here.
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            decoder = None
    if decoder is None:
        encoding = "latin-1"
    else:
        encoding = "utf-8-sig" if first.startswith(codecs.BOM_UTF8) else "utf-8"
    unterminated = bool(last) and not last.endswith(b"\n")
    return encoding, newlines + unterminated


class GenericProcessor:
    """Accepts every type and reports what the upload already established, plus the
    encoding and line count of text."""

    name: ClassVar[str] = "generic"
    priority: ClassVar[int] = 0

    def accepts(self, mime: str) -> bool:
        return True

    def run(self, source: Path, info: FileInfo, out: Path) -> FileResult:
        if not is_text(info.mime):
            return FileResult(size=info.size, sha256=info.sha256, mime=info.mime)
        encoding, lines = profile_text(source)
        return FileResult(
            size=info.size, sha256=info.sha256, mime=info.mime, encoding=encoding, lines=lines
        )
