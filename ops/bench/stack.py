"""The servers a benchmark runs against: the embedded stack, fresh and provisioned.

Each suite gets a data folder of its own under `<data_dir>/bench/<suite>-stack`,
emptied first, so figures never depend on what an earlier run left behind.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ops.processes import provision
from ops.secrets import with_dev_secrets
from ops.stack import EmbeddedStack
from schemas.settings import Settings

# Benchmarks measure throughput, not the rate limiter's refusals.
UNLIMITED = {
    f"rate_limit_{by}_{kind}": "" for by in ("owner", "address") for kind in ("reads", "writes")
}


@contextmanager
def bench_stack(settings: Settings, suite: str) -> Iterator[Settings]:
    """Provisioned settings of a fresh embedded stack (servers set in `settings` are
    used as they are)."""
    folder = Path(settings.data_dir) / "bench" / f"{suite}-stack"
    shutil.rmtree(folder, ignore_errors=True)
    fresh = with_dev_secrets(settings.replace(data_dir=str(folder), **UNLIMITED))
    with EmbeddedStack(fresh) as stack:
        ready = stack.settings_out
        asyncio.run(provision(ready))
        yield ready
