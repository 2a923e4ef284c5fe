"""The cyclic garbage collector, tuned once per long-lived process."""

from __future__ import annotations

import gc

# Allocations (net) between young-generation collections; Python 3.11's default is 700.
GC_YOUNG_THRESHOLD = 50_000


def tune_collector() -> None:
    """Collect less often, and leave what exists now (modules, clients, the app) out
    of every later scan. Process-wide, and only ever raised; call it again once more
    long-lived objects exist.

    Persistence allocates tens of thousands of short-lived objects per batch (decoded
    events, NATS messages, rows), all freed by refcounting: at the default threshold
    the collector ran every few hundred of them and took a fifth of the process's
    time. The gateway at 2,000 requests/s ran a full collection about once a second,
    each scanning every module's objects and stalling all requests for 100-190 ms:
    its p99."""
    young, middle, old = gc.get_threshold()
    if young and young < GC_YOUNG_THRESHOLD:
        gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)
    gc.freeze()
