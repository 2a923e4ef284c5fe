"""Discovery of processors through entry points, and the choice of one per file."""

from __future__ import annotations

from collections.abc import Sequence
from importlib.metadata import entry_points

from actors.processors.base import Processor

GROUP = "conveyor.processors"


def load_processors() -> list[Processor]:
    """Instantiate every processor registered under `GROUP`, highest priority first."""
    processors: list[Processor] = []
    for entry in entry_points(group=GROUP):
        factory = entry.load()
        processor = factory()
        # The protocol is not runtime-checkable; a broken plugin should fail at startup,
        # not on the first file it is offered.
        missing = [a for a in ("name", "priority", "accepts", "run") if not hasattr(processor, a)]
        if missing:
            raise TypeError(f"entry point {entry.name!r} lacks {', '.join(missing)}")
        processors.append(processor)
    # sorted() is stable, so equal priorities keep their registration order.
    return sorted(processors, key=lambda p: -p.priority)


def pick(processors: Sequence[Processor], mime: str) -> Processor:
    """The first processor with the highest priority among those accepting `mime`."""
    best: Processor | None = None
    for processor in processors:
        if processor.accepts(mime) and (best is None or processor.priority > best.priority):
            best = processor
    if best is None:
        raise LookupError(f"no processor accepts {mime!r}")
    return best
