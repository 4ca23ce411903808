"""Pausing Python's cycle collector around one batch of set-based work.

A batch (1,000 webhook deliveries, say) allocates a few hundred thousand small
objects that die by reference counting when the batch ends: parsed payloads,
rows read back, report records.  None of them form cycles, but every 700
allocations the cycle collector runs anyway, and each time an older
generation is due it walks *every* tracked object the process holds (Django's
app registry, caches, whatever the caller keeps), not only the batch's.  In
the apply benchmark that walk was 4.2 s of a 23 s run (bench/README.md,
webhooks: measured with ``gc.callbacks``).

:func:`gc_paused` turns the collector off for the batch and puts it back as it
was.  Memory stays bounded by the batch: what the batch frees, reference
counting frees at once; a cycle made during the batch (an exception's
traceback, say) waits for the next collection after it, which the allocation
counters due by then start as soon as the collector is back on.  Nesting is
safe: only the outermost pause turns the collector back on.  The collector is
process-wide, so this is for code that owns its process or thread while it
runs (a worker's task, a management command), not for request handlers.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()
