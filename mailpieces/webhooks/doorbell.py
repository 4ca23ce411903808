"""The processing doorbell: a django-q2 task that says "the inbox may have
work".  It carries nothing; the inbox rows say what is due, so a ring that
is lost, late or doubled changes only the timing.  The Schedule (every 15 s)
is the backstop for a lost ring.

A flood of webhooks must not become a flood of tasks: one process rings at
most once per ``RING_EVERY_S``; a run started by an earlier ring drains
everything stored before it looks (it loops until the inbox is empty).
"""

from __future__ import annotations

import logging
import threading
import time

from django.db import transaction

logger = logging.getLogger(__name__)

TASK = "mailpieces.tasks.process_webhooks_task"
RING_EVERY_S = 1.0

_last_ring = -RING_EVERY_S
_lock = threading.Lock()


def enqueue() -> None:
    """Put one processing run on the queue (a seam tests replace)."""
    from django_q.tasks import async_task

    async_task(TASK, task_name="process webhooks", group="webhooks")


def webhooks_ring() -> bool:
    """Ring unless this process rang within ``RING_EVERY_S``; True when it rang.
    A failed enqueue is logged and left to the Schedule."""
    global _last_ring
    with _lock:
        now = time.monotonic()
        if now - _last_ring < RING_EVERY_S:
            return False
        _last_ring = now
    try:
        enqueue()
    except Exception as exc:  # the broker's errors have no common type
        logger.warning("could not enqueue webhook processing (the schedule will run it): %s", type(exc).__name__)
        with _lock:
            _last_ring = -RING_EVERY_S
        return False
    return True


def webhooks_ring_on_commit() -> None:
    transaction.on_commit(webhooks_ring)
