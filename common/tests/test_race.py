"""``common.testing.race``: the harness the concurrency tests rely on."""

from __future__ import annotations

import threading

import pytest

from common.testing import race


def test_it_runs_the_workers_at_the_same_time_and_returns_their_results_in_order() -> None:
    both = threading.Barrier(2)

    def worker(n: int) -> int:
        both.wait(timeout=5)  # passes only while the other worker runs too
        return n * 10

    assert race([lambda: worker(1), lambda: worker(2)], timeout=10) == [10, 20]


def test_it_raises_a_workers_error_after_every_worker_ended() -> None:
    ended: list[str] = []

    def fails() -> None:
        raise ValueError("boom")

    def succeeds() -> None:
        ended.append("ok")

    with pytest.raises(ValueError, match="boom"):
        race([fails, succeeds])
    assert ended == ["ok"]


def test_it_fails_instead_of_hanging_on_a_stuck_worker() -> None:
    release = threading.Event()
    try:
        with pytest.raises(TimeoutError, match="1 of 2 workers"):
            race([lambda: release.wait(10), lambda: None], timeout=0.5)
    finally:
        release.set()
