"""Test helpers shared across apps.  Not imported by application code.

``race`` is the one harness for the tests that need real concurrency: real
threads, each with its own database connection, released together.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from django.db import connections

T = TypeVar("T")


def race(workers: Sequence[Callable[[], T]], *, timeout: float = 120) -> list[T]:
    """Run each worker in its own thread, all released at once; their results, in order.

    Every thread closes the connections it opened (Django opens one per thread,
    and a test database cannot be dropped while one is left open).  A worker's
    exception is raised here, the first one to happen, once every thread has
    ended; a thread still running after ``timeout`` seconds fails the test
    instead of hanging the suite.
    """
    start = threading.Barrier(len(workers))
    results: dict[int, T] = {}
    errors: list[BaseException] = []

    def run(index: int, worker: Callable[[], T]) -> None:
        try:
            start.wait(timeout=timeout)
            results[index] = worker()
        except BaseException as exc:  # raised in the test's thread below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i, worker)) for i, worker in enumerate(workers)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
    if errors:
        raise errors[0]
    stuck = sum(thread.is_alive() for thread in threads)
    if stuck:
        raise TimeoutError(f"{stuck} of {len(threads)} workers still running after {timeout} s")
    return [results[i] for i in range(len(workers))]
