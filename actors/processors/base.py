"""The processor contract."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Protocol

import msgspec


class FileInfo(msgspec.Struct, frozen=True, kw_only=True):
    """What the upload actor established about a file before it is processed."""

    filename: str
    size: int
    sha256: str
    mime: str


class Processor(Protocol):
    """Runs in a worker thread: `run` may block and use CPU, never the event loop.

    `priority` orders candidates: the first registered processor with the highest
    priority whose `accepts` is true wins; the generic processor has the lowest.
    """

    name: ClassVar[str]
    priority: ClassVar[int]

    def accepts(self, mime: str) -> bool: ...

    def run(self, source: Path, info: FileInfo, out: Path) -> msgspec.Struct:
        """Profile `source` and return a Struct; raise `actors.errors.BadFile` when the file
        is at fault.

        Every file written into the (empty) directory `out` becomes an artifact of the job,
        stored next to its result and listed by `GET /v1/jobs/{id}/artifacts`. A returned
        Struct that is not one of `schemas.results.Result` is carried as a `CustomResult`.
        """
        ...
