"""Entry-point discovery, processor choice and the generic fallback."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pytest

from actors.processors.base import FileInfo, Processor
from actors.processors.generic import GenericProcessor
from actors.processors.image import ImageProcessor
from actors.processors.registry import load_processors, pick
from actors.processors.tabular import TabularProcessor
from schemas.results import FileResult, Result


class Fake:
    name: ClassVar[str] = "fake"
    priority: ClassVar[int] = 100

    def __init__(self, mimes: set[str]) -> None:
        self.mimes = mimes

    def accepts(self, mime: str) -> bool:
        return mime in self.mimes

    def run(self, source: Path, info: FileInfo, out: Path) -> Result:
        raise NotImplementedError


def test_load_processors_orders_by_priority() -> None:
    processors = load_processors()
    assert {type(p) for p in processors} == {TabularProcessor, ImageProcessor, GenericProcessor}
    assert type(processors[-1]) is GenericProcessor
    priorities = [p.priority for p in processors]
    assert priorities == sorted(priorities, reverse=True)


@pytest.mark.parametrize(
    ("mime", "name"),
    [
        ("text/csv", "tabular"),
        ("text/tab-separated-values", "tabular"),
        ("text/plain", "generic"),
        ("application/x-ndjson", "tabular"),
        ("application/vnd.apache.parquet", "tabular"),
        ("image/png", "image"),
        ("image/webp", "image"),
        ("image/bmp", "generic"),
    ],
)
def test_pick_from_installed(mime: str, name: str) -> None:
    assert pick(load_processors(), mime).name == name


def test_pick_prefers_priority_then_registration_order() -> None:
    first, second = Fake({"text/csv"}), Fake({"text/csv"})
    processors: list[Processor] = [GenericProcessor(), first, second]
    assert pick(processors, "text/csv") is first
    assert isinstance(pick(processors, "image/gif"), GenericProcessor)


def test_pick_without_candidate() -> None:
    with pytest.raises(LookupError):
        pick([Fake({"text/csv"})], "image/png")


def test_generic_reports_upload_facts(tmp_path: Path) -> None:
    path = tmp_path / "blob.bin"
    path.write_bytes(b"\x00\x01")
    info = FileInfo(filename="blob.bin", size=2, sha256="ab" * 32, mime="application/octet-stream")
    out = tmp_path / "out"
    out.mkdir()
    assert GenericProcessor().run(path, info, out) == FileResult(
        size=2, sha256="ab" * 32, mime="application/octet-stream"
    )
