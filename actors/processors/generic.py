"""The fallback processor: facts about any file, whatever its content."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from actors.processors.base import FileInfo
from schemas.results import FileResult


class GenericProcessor:
    """Accepts every type and reports what the upload already established."""

    name: ClassVar[str] = "generic"
    priority: ClassVar[int] = 0

    def accepts(self, mime: str) -> bool:
        return True

    def run(self, source: Path, info: FileInfo) -> FileResult:
        return FileResult(size=info.size, sha256=info.sha256, mime=info.mime)
