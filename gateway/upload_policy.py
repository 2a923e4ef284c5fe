"""What an upload request may declare: a clean file name and an allowed content type.

The file name is only ever shown back (job views, exports' names); object keys are
made from the owner and the upload id, never from it.
"""

from __future__ import annotations

import unicodedata

from gateway.errors import Unprocessable

MAX_FILENAME_BYTES = 255
# Control, format (bidi overrides, zero-width), surrogate, private-use, unassigned,
# and line/paragraph separators: invisible or misleading in logs, headers and UIs.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def clean_filename(raw: str) -> str:
    """The last path segment of `raw`, NFC-normalised; 422 when nothing usable is left."""
    name = unicodedata.normalize("NFC", raw)
    bad = sorted(
        {f"U+{ord(c):04X}" for c in name if unicodedata.category(c) in _REFUSED_CATEGORIES}
    )
    if bad:
        raise Unprocessable(f"filename has control or invisible characters: {', '.join(bad)}")
    # Browsers and tools send full paths ("C:\\Users\\a\\f.csv", "../../f.csv"): keep
    # the base name only.
    name = name.replace("\\", "/").rsplit("/", 1)[-1].strip()
    if name in ("", ".", ".."):
        raise Unprocessable("filename has no name after its directories")
    if len(name.encode()) > MAX_FILENAME_BYTES:
        raise Unprocessable(f"filename is over {MAX_FILENAME_BYTES} bytes in UTF-8")
    return name


class ContentTypes:
    """An allow-list of `type/subtype` and `type/*` entries (CONVEYOR_ALLOWED_CONTENT_TYPES)."""

    def __init__(self, setting: str) -> None:
        entries = {e.strip().lower() for e in setting.split(",") if e.strip()}
        self._exact = frozenset(e for e in entries if not e.endswith("/*"))
        self._families = frozenset(e[:-2] for e in entries if e.endswith("/*"))
        self.listed = ", ".join(sorted(entries))

    def check(self, content_type: str) -> str:
        """The content type, lower-cased; 422 when it is not allowed."""
        value = content_type.strip().lower()
        if value not in self._exact and value.split("/", 1)[0] not in self._families:
            raise Unprocessable(
                f"content_type {content_type!r} is not accepted; one of {self.listed}"
            )
        return value
