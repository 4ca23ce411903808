"""The reconcile's rule and loop, on an in-memory job list with a fake clock (no HTTP, no waiting)."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Mapping
from typing import Any

import pytest

from printers.base import PrinterError
from printers.intelliprint.reconcile import MAX_ROUNDS, Job, job_created, job_submit, job_winner


def job(job_id: str, created: Any, *, confirmed: bool = False) -> dict[str, Any]:
    return {"id": job_id, "created": created, "confirmed": confirmed, "reference": "r"}


class FakeApi:
    """Jobs in memory; ``hooks`` run before the n-th list (0-based) to play another worker."""

    def __init__(self, *jobs: dict[str, Any]) -> None:
        self.jobs_by_id = {j["id"]: dict(j) for j in jobs}
        self.ids = (f"print_{n:04d}" for n in itertools.count(1))
        self.lists = 0
        self.calls: list[str] = []
        self.hooks: dict[int, Any] = {}
        self.now = 1_000.0  # fake monotonic clock and server clock, in seconds

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def jobs(self, reference: str, *, testmode: bool) -> list[Job]:
        self.hooks.get(self.lists, lambda: None)()
        self.lists += 1
        self.calls.append("list")
        return [dict(j) for j in self.jobs_by_id.values() if not j.get("deleted")]

    def create(self, payload: Mapping[str, Any]) -> Job:
        self.calls.append("create")
        new = job(next(self.ids), int(self.now))
        self.jobs_by_id[new["id"]] = new
        return dict(new)

    def confirm(self, job: Job) -> Job:
        self.calls.append(f"confirm {job['id']}")
        self.jobs_by_id[job["id"]]["confirmed"] = True
        return dict(self.jobs_by_id[job["id"]])

    def delete(self, job: Job) -> Job:
        self.calls.append(f"delete {job['id']}")
        stored = self.jobs_by_id[job["id"]]
        if stored["confirmed"]:
            stored["cancelled"] = True
            return dict(stored)
        stored["deleted"] = True
        return {"id": job["id"], "deleted": True}


def submit(api: FakeApi, *, settle_s: float = 1.0) -> Job:
    return job_submit(
        api, reference="r", testmode=False, payload={}, settle_s=settle_s, clock=api.clock, sleep=api.sleep
    )


# ---------------------------------------------------------------------- the rule
def winner_id(jobs: list[Job]) -> str:
    winner = job_winner(jobs)
    assert winner is not None
    return str(winner["id"])


def test_a_confirmed_job_wins_over_an_earlier_unconfirmed_one() -> None:
    assert winner_id([job("print_a", 100), job("print_b", 200, confirmed=True)]) == "print_b"


def test_otherwise_the_earliest_created_wins() -> None:
    assert winner_id([job("print_a", 200), job("print_b", 100)]) == "print_b"


def test_a_tie_in_created_goes_to_the_smaller_id_whatever_the_list_order() -> None:
    jobs: list[Job] = [job("print_b", 100), job("print_a", 100)]
    assert winner_id(jobs) == winner_id(jobs[::-1]) == "print_a"
    assert job_winner([]) is None


@pytest.mark.parametrize(
    ("created", "seconds"),
    [(100, 100.0), (100.5, 100.5), ("100", 100.0), ("1970-01-01T00:01:40Z", 100.0), (None, 0.0), (True, 0.0)],
)
def test_created_is_read_as_epoch_seconds(created: Any, seconds: float) -> None:
    assert job_created({"created": created}) == seconds


# ---------------------------------------------------------------------- the loop
def test_it_creates_waits_the_settle_time_then_confirms_its_job() -> None:
    api = FakeApi()
    assert submit(api)["id"] == "print_0001"
    assert api.calls == ["list", "create", "list", "confirm print_0001"]
    assert api.now == 1_001.0  # one settle, no more


def test_it_returns_a_confirmed_job_and_deletes_the_unconfirmed_leftovers() -> None:
    api = FakeApi(job("print_x", 50), job("print_y", 60, confirmed=True))
    assert submit(api)["id"] == "print_y"
    assert api.calls == ["list", "delete print_x"]


def test_it_never_deletes_a_confirmed_job_even_a_second_one() -> None:
    api = FakeApi(job("print_x", 50, confirmed=True), job("print_y", 60, confirmed=True))
    assert submit(api)["id"] == "print_x"
    assert api.calls == ["list"]


def test_it_adopts_an_unconfirmed_job_after_waiting_instead_of_creating() -> None:
    api = FakeApi(job("print_orphan", 999))
    assert submit(api)["id"] == "print_orphan"
    assert api.calls == ["list", "list", "confirm print_orphan"]


def test_a_job_created_during_the_wait_in_the_same_second_loses_to_the_earlier_one() -> None:
    api = FakeApi()
    # Another worker's job appears before the deciding list, same second, smaller id.
    api.hooks[1] = lambda: api.jobs_by_id.update({"print_0000": job("print_0000", 1_000)})
    assert submit(api)["id"] == "print_0000"  # equal created: the smaller id, as that worker decides too
    assert api.calls[-1] == "delete print_0001"


def test_it_re_anchors_when_the_job_it_waited_on_vanishes_unconfirmed() -> None:
    api = FakeApi(job("print_x", 990), job("print_y", 995))

    def delete_x_by_hand() -> None:
        api.jobs_by_id["print_x"]["deleted"] = True

    api.hooks[1] = delete_x_by_hand
    assert submit(api)["id"] == "print_y"
    assert api.calls == ["list", "list", "list", "confirm print_y"]  # waited again on print_y


def test_it_reports_a_created_job_that_is_never_listed_as_a_transient_error() -> None:
    api = FakeApi()
    api.hooks[1] = lambda: api.jobs_by_id.clear()
    with pytest.raises(PrinterError, match="does not list the job") as lost:
        submit(api)
    assert lost.value.permanent is False
    assert api.calls.count("create") == 1  # never a second create in one call


def test_it_gives_up_after_a_bounded_number_of_rounds_when_jobs_keep_vanishing() -> None:
    api = FakeApi(job("print_x", 990))

    def churn() -> None:  # every list: the anchor is gone and a new job stands in for it
        for stored in api.jobs_by_id.values():
            stored["deleted"] = True
        new = job(f"print_{api.lists:04d}", 990)
        api.jobs_by_id[new["id"]] = new

    api.hooks = dict.fromkeys(range(1, MAX_ROUNDS + 1), churn)
    with pytest.raises(PrinterError, match="kept changing") as churned:
        submit(api)
    assert churned.value.permanent is False
    assert not any(call.startswith("confirm") for call in api.calls)


def test_a_delete_that_cancels_a_confirmed_job_is_logged_as_an_error(caplog: pytest.LogCaptureFixture) -> None:
    api = FakeApi(job("print_x", 990), job("print_y", 995))

    def confirm_y_behind_our_back() -> None:  # what the wait rules out: the log is the alarm
        api.jobs_by_id["print_y"]["confirmed"] = True

    original = api.confirm

    def confirm(job: Job) -> Job:
        confirm_y_behind_our_back()
        return original(job)

    api.confirm = confirm  # type: ignore[method-assign]
    with caplog.at_level(logging.ERROR, logger="printers.intelliprint.reconcile"):
        submit(api)
    assert api.calls[-1] == "delete print_y"  # listed unconfirmed, confirmed since
    assert "print_y cancelled a confirmed job" in caplog.text
