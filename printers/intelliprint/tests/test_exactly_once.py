"""IntelliPrint prints one job per reference however submits overlap (issue 7, item 3).

Against the simulator, with the production settle time (1 s): real threads racing, and
scripted interleavings that pin the order of each worker's requests.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from unittest import mock
from urllib.parse import urlsplit

import httpx
import pytest

from printers import http
from printers.base import Address, PrinterError, Submission, SubmitRequest
from printers.registry import get_printer
from printers.simulator import Fault, Piece, Simulator
from printers.testing import make_request

UK = Address(name="Grace Hopper", address1="2 Pier Road", city="Whitby", zip="YO21 3PU", country="GB")
PAIRS = 20


def request_for(recipient: int) -> SubmitRequest:
    return make_request(f"pc:7:{recipient}:0", to=UK, size="A6", mail_date=dt.date(2026, 12, 1))


def jobs(simulator: Simulator, reference: str) -> list[Piece]:
    return [p for p in simulator.pieces("intelliprint") if p.reference == reference]


def live_unconfirmed(simulator: Simulator, reference: str) -> list[Piece]:
    return [p for p in jobs(simulator, reference) if not p.response["confirmed"] and not p.extra.get("deleted")]


def step_of(method: str, url: str) -> str:
    """A request as the script names it: list, create, confirm, get or delete."""
    parts = urlsplit(url).path.rstrip("/").split("/")
    if parts[-1] == "prints":
        return "list" if method == "GET" else "create"
    return {"POST": "confirm", "GET": "get", "DELETE": "delete"}.get(method, method)


class Script:
    """Runs each named worker's first requests in one global order, each request finished
    before the next one starts; a worker's later requests run freely.  Workers are threads
    named after the script's workers."""

    def __init__(self, steps: list[tuple[str, str]]) -> None:
        self.steps = steps
        self.position = 0
        self.done: dict[str, int] = {}
        self.errors: list[str] = []
        self.cond = threading.Condition()
        self.real = http.request

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        worker, step = threading.current_thread().name, step_of(method, url)
        mine = [i for i, (name, _) in enumerate(self.steps) if name == worker]
        with self.cond:
            count = self.done.get(worker, 0)
            self.done[worker] = count + 1
        if count >= len(mine):
            return self.real(method, url, **kwargs)
        index = mine[count]
        if self.steps[index][1] != step:
            self.errors.append(f"{worker} sent {step} where the script expects {self.steps[index][1]}")
        with self.cond:
            if not self.cond.wait_for(lambda: self.position == index, timeout=10):
                self.errors.append(f"{worker} waited in vain for step {index} ({step})")
        try:
            return self.real(method, url, **kwargs)
        finally:
            with self.cond:
                self.position = max(self.position, index + 1)
                self.cond.notify_all()

    def run(self, workers: dict[str, Callable[[], Submission]]) -> dict[str, Submission | BaseException]:
        results: dict[str, Submission | BaseException] = {}

        def work(name: str) -> None:
            try:
                results[name] = workers[name]()
            except BaseException as exc:
                results[name] = exc

        threads = [threading.Thread(target=work, args=(name,), name=name) for name in workers]
        with mock.patch("printers.http.request", new=self.request):
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=30)
        assert self.errors == []
        return results


@pytest.fixture
def pinned_ids(simulator: Simulator) -> Iterator[list[str]]:
    """Print ids the simulator hands out next, in order (letters keep random ids)."""
    handler: Any = simulator.handlers["intelliprint"]
    queue: list[str] = []
    random_id = handler._new_id

    def next_id(prefix: str) -> str:
        return queue.pop(0) if prefix == "print_" and queue else random_id(prefix)

    with mock.patch.object(handler, "_new_id", side_effect=next_id):
        yield queue


# ---------------------------------------------------------------------- real threads
@pytest.fixture
def crowded(request: pytest.FixtureRequest, settings: Any) -> Simulator:
    """The simulator, with a client timeout long enough for 40 requests at once."""
    simulator: Simulator = request.getfixturevalue("simulator")
    settings.PRINTER_TIMEOUT_S = 30.0  # 40 requests at once queue at the simulator on a busy machine
    return simulator


def test_twenty_overlapping_pairs_print_one_piece_per_reference(crowded: Simulator) -> None:
    simulator, printer = crowded, get_printer("intelliprint")
    barriers = [threading.Barrier(2) for _ in range(PAIRS)]

    def submit(pair: int) -> Submission:
        barriers[pair].wait(timeout=30)  # both submits of a pair start together
        return printer.submit(request_for(3000 + pair))

    with ThreadPoolExecutor(max_workers=2 * PAIRS) as pool:
        futures = [(pair, pool.submit(submit, pair)) for pair in range(PAIRS) for _ in range(2)]
        results: dict[int, list[Submission]] = {}
        for pair, future in futures:
            results.setdefault(pair, []).append(future.result(timeout=120))

    for pair, (first, second) in results.items():
        reference = f"pc:7:{3000 + pair}:0"
        assert first.printer_id == second.printer_id, reference  # the loser returns the winner
        assert simulator.physical_pieces("intelliprint", reference) == 1, reference
        winner = simulator.piece("intelliprint", first.printer_id)
        assert winner is not None
        assert winner.response["confirmed"]
        assert not winner.extra.get("deleted")
        assert live_unconfirmed(simulator, reference) == []  # the losing job is deleted, not left
    assert simulator.physical_pieces("intelliprint") == PAIRS


# ---------------------------------------------------------------------- scripted interleavings
def race(request: SubmitRequest, steps: str) -> str:
    """Two workers, A and B, submit ``request`` with their first requests in the order of
    ``steps`` ("A:list B:create ..."); both must return the same job, whose id is returned."""
    printer = get_printer("intelliprint")
    script = Script([(worker, step) for worker, _, step in (item.partition(":") for item in steps.split())])
    results = script.run({"A": lambda: printer.submit(request), "B": lambda: printer.submit(request)})
    a, b = results["A"], results["B"]
    assert isinstance(a, Submission), a
    assert isinstance(b, Submission), b
    assert a.printer_id == b.printer_id  # the loser returns the winner's Submission
    return a.printer_id


def test_both_create_then_both_pick_the_same_winner_and_the_second_confirm_is_harmless(
    simulator: Simulator,
) -> None:
    request = request_for(4001)
    race(request, "A:list B:list A:create B:create A:list B:list A:confirm B:confirm B:get")
    assert len(jobs(simulator, request.reference)) == 2
    assert simulator.physical_pieces("intelliprint", request.reference) == 1
    assert live_unconfirmed(simulator, request.reference) == []


def test_a_job_created_after_the_decision_never_wins_even_with_a_smaller_id(
    simulator: Simulator, pinned_ids: list[str]
) -> None:
    # B's job sorts first by id; with created counted in whole seconds, only the wait
    # before deciding keeps it from tying with A's and winning against A's confirm.
    pinned_ids.extend(["print_zzzzzzzzzz", "print_0000000000"])
    request = request_for(4002)
    winner = race(request, "B:list A:list A:create A:list B:create B:list B:confirm A:confirm")
    assert winner == "print_zzzzzzzzzz"
    assert simulator.physical_pieces("intelliprint", request.reference) == 1
    loser = simulator.piece("intelliprint", "print_0000000000")
    assert loser is not None
    assert loser.extra.get("deleted")
    assert not loser.cancelled


def test_a_worker_that_lists_after_the_winner_is_confirmed_deletes_its_own_job(simulator: Simulator) -> None:
    request = request_for(4003)
    race(request, "B:list A:list A:create A:list A:confirm B:create B:list B:delete")
    assert simulator.physical_pieces("intelliprint", request.reference) == 1
    assert live_unconfirmed(simulator, request.reference) == []


def test_a_worker_that_finds_an_unconfirmed_job_adopts_it_instead_of_creating(simulator: Simulator) -> None:
    request = request_for(4004)
    race(request, "A:list A:create B:list A:list B:list")
    assert len(jobs(simulator, request.reference)) == 1  # B created nothing
    assert simulator.physical_pieces("intelliprint", request.reference) == 1


# ---------------------------------------------------------------------- lost answers
def test_a_lost_create_answer_ends_with_one_job(simulator: Simulator) -> None:
    printer, request = get_printer("intelliprint"), request_for(4005)
    simulator.inject("intelliprint", Fault.timeout_after_create(hang_s=1.0, method="POST", path_contains="/v1/prints"))
    with pytest.raises(PrinterError) as lost:
        printer.submit(request)
    assert lost.value.permanent is False
    assert simulator.physical_pieces("intelliprint", request.reference) == 0  # created, never confirmed
    again = printer.submit(request)
    (job,) = jobs(simulator, request.reference)
    assert again.printer_id == job.id
    assert simulator.physical_pieces("intelliprint", request.reference) == 1


def test_a_lost_create_answer_while_another_worker_races_ends_with_one_job(simulator: Simulator) -> None:
    printer, request = get_printer("intelliprint"), request_for(4006)
    simulator.inject("intelliprint", Fault.timeout_after_create(hang_s=1.0, method="POST", path_contains="/v1/prints"))
    script = Script([("A", "list"), ("A", "create"), ("B", "list")])
    results = script.run({"A": lambda: printer.submit(request), "B": lambda: printer.submit(request)})
    assert isinstance(results["A"], PrinterError)
    assert results["A"].permanent is False
    b = results["B"]
    assert isinstance(b, Submission)
    assert printer.submit(request).printer_id == b.printer_id  # A's retry finds B's confirm
    assert len(jobs(simulator, request.reference)) == 1
    assert simulator.physical_pieces("intelliprint", request.reference) == 1
