"""Exactly one printed job per reference, without idempotency keys: the post-create reconcile.

IntelliPrint prints a job only once it is confirmed, lists jobs by ``reference`` (unconfirmed
ones included) and deletes an unconfirmed job on ``DELETE`` (vendors.md §3.1).  ``submit``:

1. lists the jobs of the reference; a confirmed one is the answer (nothing is created);
2. with none, creates one job, unconfirmed; with unconfirmed ones only (a crashed or lost
   attempt, or a racing worker), adopts them instead of creating;
3. waits until a job it saw (its *anchor*) has existed for ``settle_s`` (1 s), lists again
   and, if the anchor is still listed, picks the winner with :func:`job_winner`: a confirmed
   job if any, else the earliest ``created``, ties broken by id;
4. confirms the winner (an answer that it is already confirmed is success), then deletes
   every other *unconfirmed* job it listed, and returns the winner.

Why the wait (the one interleaving the bare rule gets wrong): ``created`` counts whole
seconds and ids are random, so a job created *after* worker A listed can still sort before
A's winner (same second, smaller id).  Then A confirms its winner while B, listing a moment
later, picks the newer job, confirms it too and deletes A's, which cancels A's confirmed
job: two confirms, A holding a cancelled job (or, when B's DELETE comes first, A's confirm
meets a 404 and A's recipient goes to Error although B's job prints).  Deciding only on a list taken at least one
second after the anchor existed rules that out: the winner sorts no later than the anchor
(it is the minimum of a list holding it), so its ``created`` is below the second of the
deciding list, and every job created afterwards has a later ``created`` and sorts after it.
Every worker that decides therefore decides the same job (the minimum of all jobs seen by
the first one to decide); only that job is ever confirmed, so a DELETE only ever meets an
unconfirmed job and never cancels.  It assumes the API lists a job as soon as its create
has answered (vendors.md does not say otherwise) and that the server's clock runs with ours.

The interleavings, A and B submitting one reference (the database claim normally keeps B
out; these are what happens when it does not, or when an earlier attempt died):

- A finishes before B lists: B finds the confirmed job in step 1 and creates nothing.
- Both list before either creates: both create (a, b), both wait, both list {a, b} and pick
  the same winner; both confirm it (the second confirm answers "already confirmed": success)
  and both delete the loser (the second DELETE answers 404: ignored).
- A decides before B creates: B's job is created a second or more after A's anchor, so it
  sorts after A's winner; B lists {winner, b}, picks A's winner (confirmed by then, or about
  to be: confirming it again is harmless) and deletes its own b.
- B lists after A created, before A confirmed: B adopts A's job instead of creating; both
  confirm it (the second harmlessly).
- A deletes B's job before B decides: A confirmed its winner before deleting, so B's next
  list finds the confirmed job and returns it.  (Should a job B anchored on vanish with no
  confirmed job listed, deleted by hand say, B anchors on the current minimum and waits.)
- A dies after creating (or its create answer is lost): the job stays unconfirmed and
  prints nothing; the next attempt adopts it (step 2) and confirms it, or deletes it when
  an earlier job wins.
- A dies after confirming, before deleting: the losers stay unconfirmed (they never print);
  the next attempt finds the confirmed job and deletes them.
- A confirm whose answer is lost: the retry lists, finds the job confirmed and returns it.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from printers.base import PrinterError, aware

log = logging.getLogger(__name__)

Job = Mapping[str, Any]

SETTLE_S = 1.0  # > the 1-second grain of ``created``
MAX_ROUNDS = 5


class JobApi(Protocol):
    """The four calls the reconcile needs (the client implements them)."""

    def jobs(self, reference: str, *, testmode: bool) -> list[Job]: ...

    def create(self, payload: Mapping[str, Any]) -> Job: ...

    def confirm(self, job: Job) -> Job: ...

    def delete(self, job: Job) -> Job: ...


def job_id(job: Job) -> str:
    return str(job.get("id") or "")


def job_created(job: Job) -> float:
    """``created`` as epoch seconds (a number, or an ISO 8601 string); 0 when absent."""
    value = job.get("created")
    if isinstance(value, bool):
        return 0.0
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and value:
        try:
            return float(value)
        except ValueError:
            pass
        try:
            moment = aware(dt.datetime.fromisoformat(value.replace("Z", "+00:00")))
        except ValueError:
            return 0.0
        return moment.timestamp()
    return 0.0


def job_rank(job: Job) -> tuple[bool, float, str]:
    """Sort key of the winner rule: confirmed first, then the earliest created, then the id."""
    return (not job.get("confirmed"), job_created(job), job_id(job))


def job_winner(jobs: list[Job]) -> Job | None:
    """The one job of a reference that prints; every worker computes it the same way."""
    return min(jobs, key=job_rank) if jobs else None


def job_submit(
    api: JobApi,
    *,
    reference: str,
    testmode: bool,
    payload: Mapping[str, Any],
    settle_s: float = SETTLE_S,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Job:
    """The confirmed job of ``reference``: found, adopted or created (steps in the module doc)."""
    created: str | None = None  # the job this call created (at most one)
    anchor, anchor_seen = "", 0.0  # a job known to exist at ``anchor_seen`` (monotonic clock)
    for _ in range(MAX_ROUNDS):
        listed_at = clock()  # before the request: the server lists no earlier than this
        jobs = api.jobs(reference, testmode=testmode)
        winner = job_winner(jobs)
        listed = {job_id(job) for job in jobs}
        if winner is not None and winner.get("confirmed"):
            _discard(api, jobs, keep=winner)
            return winner
        if winner is not None and anchor in listed and listed_at - anchor_seen >= settle_s:
            # Confirm first, delete after: a worker that dies in between leaves only
            # unconfirmed losers, which never print and which the next attempt deletes.
            confirmed = api.confirm(winner)
            _discard(api, jobs, keep=winner)
            return confirmed
        if winner is None:
            if created is not None:
                raise PrinterError(f"intelliprint does not list the job {created} it just created; retry later")
            created = job_id(api.create(payload))
            anchor, anchor_seen = created, clock()
        elif anchor not in listed:
            anchor, anchor_seen = job_id(winner), clock()
        sleep(max(0.0, anchor_seen + settle_s - clock()))
    raise PrinterError(f"intelliprint jobs of {reference!r} kept changing for {MAX_ROUNDS} rounds; retry later")


def _discard(api: JobApi, jobs: list[Job], *, keep: Job) -> None:
    """Delete the unconfirmed jobs other than ``keep``: they must never print."""
    for job in jobs:
        if job_id(job) == job_id(keep) or job.get("confirmed"):
            continue  # never DELETE a confirmed job: on IntelliPrint that cancels a print
        try:
            answer = api.delete(job)
        except PrinterError as exc:
            # 404: a racing worker deleted it first.  Anything else leaves an unconfirmed
            # job behind, which prints nothing; the next attempt tries again.
            if exc.status_code != 404:
                log.warning("intelliprint: could not delete unconfirmed job %s: %s", job_id(job), exc)
            continue
        if not answer.get("deleted"):
            # The job had been confirmed after we listed it: the reasoning in the module doc
            # was broken (a clock far off, a list lagging behind).  Say so loudly.
            log.error("intelliprint: deleting losing job %s cancelled a confirmed job instead", job_id(job))
