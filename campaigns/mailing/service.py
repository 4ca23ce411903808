"""``campaign_mail``: one mailing batch of a campaign, exactly once per recipient.

1. **Stage.** Proofed rows whose proof is of the approved design version go to
   SendingStaged, or to Scheduled when the campaign's mail date is still ahead
   (one rule for every printer: a mail date today or in the past mails now).
2. **Billing, again**, before any claim: an org that cannot be billed claims
   nothing; its SendingStaged rows (and Scheduled rows now due) become
   Error(BILLING_NOT_READY), except rows sent before, whose piece may exist:
   they wait.  0 printer calls.
3. **Claim** a batch: SendingStaged → Sending (one CAS, token, lease), and due
   Scheduled rows by token and lease alone (their status stays Scheduled
   until the printer has the piece: the spec's Scheduled → Sent).
4. **Before the first attempt**, in their own committed write: each row's
   idempotency key (``printers.keys.submission_key``), the exact request
   (address, image links, size, metadata) and the time of the first
   attempt.  Every retry sends those same bytes under that same key.
5. **Outside any transaction**, in a thread pool, each call starting only when
   the printer's shared rate limiter allows (``campaigns/mailing/limits.py``):
   a row that was ever attempted before is looked up first (by our reference)
   and submitted only when the printer has nothing; then ``submit``.
6. **Record** in one short transaction, for rows the worker still holds: a
   Mailpiece (Submitted, the printer's id) and the recipient Sent; a definitive
   refusal: an Error Mailpiece with the printer's answer and the recipient
   Error with the message of its cause; an unknown outcome (timeout, 429, 5xx):
   back to SendingStaged (Scheduled rows stay Scheduled) with a backoff that
   honours Retry-After, until the attempt budget is spent.  A row is put in
   Error after transient failures only when a lookup has just shown that the
   printer holds no piece for it.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import queue
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connections, transaction
from django.db.models import F, Q
from django.utils import timezone

from campaigns.billing.service import preflight_campaign_billing
from campaigns.claims import recipients_claim
from campaigns.mailing.limits import printer_limit, printer_permits
from campaigns.mailing.payload import submission_payload, submit_request
from campaigns.models import NEVER_SENT, Campaign, CampaignRecipient, ErrorMessages, campaign_printer_locked
from campaigns.proofing.design import campaign_approval, campaign_design
from campaigns.recipient_json import PRINTER_MAY_HAVE_IT
from campaigns.services import (
    recipients_bulk_transition,
    recipients_bulk_transition_chunked,
    recipients_fail_queued,
    recipients_wait_saying,
    recipients_write_rows,
)
from common.fsm import Actor, insert_history
from common.http import before_each_request
from common.sqlitebatch import durable_transaction
from mailpieces.models import Mailpiece, MailpieceTransition
from mailpieces.status import MailpieceStatus
from printers.base import Printer, PrinterError, Submission
from printers.keys import submission_key
from printers.registry import get_printer

logger = logging.getLogger(__name__)

Status = CampaignRecipient.Status
LEASE = timedelta(minutes=10)  # MAILING_LEASE_S by default (config/env.py); the claim is _lease()
MAX_ATTEMPTS = 6
BACKOFF = timedelta(seconds=30)  # doubled per attempt, capped; a longer Retry-After wins
MAX_BACKOFF = timedelta(hours=1)
CHUNK = 1000
# The history's reason when a card goes back to wait after an unclear answer.
UNKNOWN_OUTCOME = (
    "the printer's answer was unclear (a timeout, its rate limit or an error on its side): tried again later, "
    "looked up at the printer first and sent as the same request, which it cannot print twice"
)
# Printer answers that say our request itself was wrong (the address, the
# images, the size): the mail piece cannot be made as asked.
BAD_REQUEST_STATUSES = frozenset({400, 413, 415, 422})


@dataclass
class SendOutcome:
    submission: Submission | None = None
    message: str = ""  # set: Error with this spec message
    detail: str = ""
    response: dict[str, Any] = field(default_factory=dict)
    transient: bool = False
    retry_after: float | None = None
    # When the answer came (or the call gave up): a Retry-After counts from
    # here, not from the batch's claim, which may be minutes earlier.
    answered_at: dt.datetime | None = None


@dataclass
class MailReport:
    moved: Counter[str] = field(default_factory=Counter)
    claimed: int = 0
    calls: int = 0  # HTTP requests sent to the printer, each after its permit
    stale_permits: int = 0  # thrown away: too old by the time the call could start (limits.printer_permits)
    billing_problem: str = ""
    paused: bool = False
    waiting_for_approval: bool = False


def campaign_stage_mailing(*, campaign: Campaign, actor: Actor, today: dt.date | None = None) -> Counter[str]:
    """Proofed rows of the approved design → SendingStaged or Scheduled."""
    counts: Counter[str] = Counter()
    design = campaign_design(campaign)
    if campaign_approval(campaign, version=design.version) is None:
        return counts
    today = today or timezone.localdate()
    later = campaign.mail_date is not None and campaign.mail_date > today
    method = "schedule" if later else "stage_sending"
    ready = campaign.recipients.filter(status=Status.PROOFED, proof_version=design.version)
    moved = recipients_bulk_transition_chunked(
        rows=ready,
        method=method,
        actor=actor,
        reason=f"mail date {campaign.mail_date}" if later else "to the printer",
        chunk=CHUNK,
    )
    if moved:
        counts[Status.SCHEDULED if later else Status.SENDING_STAGED] = moved
    return counts


def sending_ready(campaign: Campaign) -> Q:
    """The SendingStaged (and due Scheduled) rows a claim may take: those of the design approved
    now, and those tried before, whatever their design (the printer may hold
    the card as it was sent: it is looked up, and finishes under its saved
    request).  Not a row never tried whose design changed, or whose approval
    was withdrawn, since it was staged: the proofing stage makes it again
    (``stale_proofs``)."""
    design = campaign_design(campaign)
    ready = ~NEVER_SENT
    if campaign_approval(campaign, version=design.version) is not None:
        ready |= Q(proof_version=design.version)
    return ready


def scheduled_due(campaign: Campaign, today: dt.date, now: dt.datetime) -> Q:
    """Scheduled rows whose day has come and that nobody holds (or whose
    holder's lease ran out), past any backoff."""
    if campaign.mail_date is not None and campaign.mail_date > today:
        return Q(pk__in=[])
    free = Q(claim_token__isnull=True, lease_until__isnull=True) | Q(lease_until__lte=now)
    return Q(status=Status.SCHEDULED) & free


def campaign_mail(
    *,
    campaign: Campaign,
    actor: Actor,
    batch_size: int = 100,
    printer: Printer | None = None,
    concurrency: int | None = None,
    now: dt.datetime | None = None,
    roll_s: float = 0.0,
) -> MailReport:
    """Run one mailing batch of ``campaign``; safe to run twice at once.

    ``roll_s`` > 0 keeps the run going for about that many seconds: once
    every call of a batch has started, the next batch is claimed (pause and
    billing checked again first) and its calls queued behind them, so the
    printer threads never idle between batches while the last calls of one
    are in flight and the batch before is recorded (``_CallPool``).  Each
    batch keeps its own claim token, lease and record.
    """
    report = MailReport()
    campaign.refresh_from_db()
    if campaign.paused:
        report.paused = True
        return report
    started = time.monotonic()
    fixed_now = now  # a caller's (a test's) clock holds for every batch; else each batch reads the time
    now = now or timezone.now()
    today = timezone.localdate(now)
    report.moved.update(campaign_stage_mailing(campaign=campaign, actor=actor, today=today))
    if campaign_approval(campaign) is None:  # of the current design
        report.waiting_for_approval = campaign.recipients.filter(status=Status.PROOFED).exists()
    staged = campaign.recipients.filter(status=Status.SENDING_STAGED)
    due = campaign.recipients.filter(scheduled_due(campaign, today, now))
    if not staged.exists() and not due.exists():
        return report
    check = preflight_campaign_billing(campaign)
    if not check.ready:
        report.billing_problem = check.problem
        report.moved[ErrorMessages.BILLING_NOT_READY] = _fail_waiting(campaign, check.problem, actor, today, now)
        return report
    printer = printer or get_printer(campaign.printer)
    workers = max(1, concurrency or int(settings.MAILING["concurrency"]))  # MAILING_CONCURRENCY, at least 1
    lease = _lease(printer, batch_size, workers)

    def claim_next(at: dt.datetime) -> _Flight | None:
        token, rows = _claim(campaign, printer.kind, actor, batch_size, lease, timezone.localdate(at), at)
        report.claimed += len(rows)
        if not rows:
            return None
        return pool.send(token, rows, _prepare(campaign, rows, at), at)

    # Answer times on the caller's clock when it fixed one (a test's), else the real one.
    clock: Callable[[], dt.datetime] = (lambda: fixed_now) if fixed_now is not None else timezone.now
    pool = _CallPool(printer, workers, report, clock)
    try:
        flight = claim_next(now)
        while flight is not None:
            following = None
            if roll_s > 0 and time.monotonic() - started < roll_s:
                pool.wait_started()  # every call of this batch is under way: claim the next now
                if _may_go_on(campaign, report):
                    following = claim_next(fixed_now or timezone.now())
            outcomes = flight.wait()
            report.moved.update(_record(campaign, flight.rows, outcomes, flight.token, actor, flight.now, printer.kind))
            flight = following
    finally:
        pool.close()
    if report.stale_permits:
        logger.warning(
            "%s: %s request permits went stale before their call could start and were thrown away "
            "(workers starved of CPU?)",
            printer.kind,
            report.stale_permits,
        )
    return report


def _lease(printer: Printer, batch_size: int, workers: int) -> timedelta:
    """How long a batch's claim lasts: at least the configured lease
    (MAILING_LEASE_S), and never shorter than the batch's worst case, or the
    sweeper would hand rows back (and a second worker take them) while their
    calls are in flight.  The worst case is the longer of a lookup and a
    submit timing out, round after round of threads, and the time the batch's
    requests take at the printer's rate limit (IntelliPrint: up to six
    requests a row at 100 a minute is six minutes for 100 rows, whatever the
    latency); doubled, as a rolling run queues one batch's calls behind the
    last one's."""
    timeouts = math.ceil(batch_size / workers) * 2 * float(settings.PRINTER_TIMEOUT_S)  # > 0 (config/env.py)
    limit, period = printer_limit(printer.kind)
    permits = batch_size * max(1, printer.max_requests_per_row) / limit * period
    floor = timedelta(seconds=int(settings.MAILING["lease_s"]))  # MAILING_LEASE_S, at least 10 (config/env.py)
    return max(floor, timedelta(seconds=math.ceil(max(timeouts, permits) * 2)))


def _may_go_on(campaign: Campaign, report: MailReport) -> bool:
    """Whether a rolling run may claim another batch: not paused since, and
    billing still ready (a problem stops the claims; the next run's own
    check fails the waiting rows)."""
    campaign.refresh_from_db()  # all of it: the org's billing fields are read afresh too
    if campaign.paused:
        report.paused = True
        return False
    check = preflight_campaign_billing(campaign)
    if not check.ready:
        report.billing_problem = check.problem
        return False
    return True


def _claim(
    campaign: Campaign,
    printer_kind: str,
    actor: Actor,
    batch_size: int,
    lease: timedelta,
    today: dt.date,
    now: dt.datetime,
) -> tuple[uuid.UUID, list[CampaignRecipient]]:
    """Claim a batch for ``printer_kind``, the printer this run calls: none
    when the campaign has been switched to another one since the run began
    (the next run takes them, for the new printer).  The printer is read
    under the campaign row's shared lock, held to the claim's commit, so a
    switch either sees this claim's rows (and is refused) or comes first."""
    with transaction.atomic():
        if campaign_printer_locked(campaign.pk) != printer_kind:
            return uuid.uuid4(), []
        ready = sending_ready(campaign)
        claim = recipients_claim(
            campaign=campaign,
            method="start_sending",
            limit=batch_size,
            lease=lease,
            actor=actor,
            now=now,
            only=ready,
        )
        token = claim.token
        room = batch_size - len(claim)
        if room > 0:
            # Scheduled rows are held by token and lease only: the CAS re-checks
            # that nobody holds them, under the row lock on PostgreSQL.
            due = scheduled_due(campaign, today, now)
            ids = list(campaign.recipients.filter(due).filter(ready).order_by("id").values_list("id", flat=True)[:room])
            if ids:
                CampaignRecipient.objects.filter(due, pk__in=ids).update(
                    claim_token=token, lease_until=claim.lease_until, updated=now
                )
    rows = CampaignRecipient.objects.filter(claim_token=token, status__in=[Status.SENDING, Status.SCHEDULED])
    return token, list(rows.order_by("id"))


def _prepare(campaign: Campaign, rows: list[CampaignRecipient], now: dt.datetime) -> dict[int, Any]:
    """Key, request and first-attempt time of every row, saved (committed)
    before any printer call; rows that have them keep them unchanged."""
    writes = []
    requests = {}
    for r in rows:
        key = r.idempotency_key or submission_key(
            org_id=campaign.organization_id, recipient_id=r.pk, gen=r.submission_gen
        )
        saved = (r.json or {}).get("submission")
        payload = saved if isinstance(saved, dict) else submission_payload(campaign, r, key)
        if key != r.idempotency_key or saved is not payload or r.first_attempt_at is None:
            writes.append((key, {**(r.json or {}), "submission": payload}, r.first_attempt_at or now, r.pk))
        requests[r.pk] = submit_request(payload, key)
    # On disk before any call: lost to a power cut, a row would look never
    # tried and be submitted again without a lookup (IntelliPrint has no keys).
    with durable_transaction():
        recipients_write_rows(fields=("idempotency_key", "json", "first_attempt_at"), rows=writes)
    return requests


@dataclass
class _Flight:
    """One claimed batch whose calls are queued or under way in a ``_CallPool``."""

    token: uuid.UUID
    rows: list[CampaignRecipient]
    requests: dict[int, Any]
    now: dt.datetime
    outcomes: dict[int, SendOutcome] = field(default_factory=dict)
    done: threading.Event = field(default_factory=threading.Event)

    def finish(self, pk: int, outcome: SendOutcome) -> None:
        self.outcomes[pk] = outcome
        if len(self.outcomes) == len(self.rows):
            self.done.set()

    def wait(self) -> dict[int, SendOutcome]:
        self.done.wait()
        return dict(self.outcomes)


# A thread that stopped outside _send_one leaves its row's outcome unknown.
_NO_CALL = SendOutcome(transient=True, detail="the call could not be made (worker thread stopped)")


class _CallPool:
    """Threads making one mailing run's printer calls, fed batch after batch.

    Each request takes its permit from the printer's shared limiter right
    before it goes out (``_send_one``), in the thread that makes it: a permit
    taken earlier, for a call that then waits for a free thread or builds its
    request, would reach the printer later than the limiter counted it, and
    bunch calls over the limit.  Threads that ask at
    the same moment share one step at the limiter's store (its group rounds),
    so a permit per call does not cost a transaction per call.  The threads
    touch the database only through the limiter, and close their connections
    when the pool closes.  At most ``workers`` threads, started as calls are
    queued (a batch of three rows starts three)."""

    def __init__(
        self,
        printer: Printer,
        workers: int,
        report: MailReport,
        clock: Callable[[], dt.datetime] = timezone.now,
    ) -> None:
        self.printer = printer
        self.clock = clock
        self.workers = workers
        self.report = report
        self.take_permit = printer_permits(printer.kind)
        self.jobs: queue.SimpleQueue[tuple[_Flight, CampaignRecipient] | None] = queue.SimpleQueue()
        # One lock for the pool's counters (and the report's); waiting on it
        # for the queue to empty is ``wait_started``.
        self.idle = threading.Condition()
        self.queued = 0  # calls queued and not yet taken by a thread
        self.threads: list[threading.Thread] = []

    def send(
        self, token: uuid.UUID, rows: list[CampaignRecipient], requests: dict[int, Any], now: dt.datetime
    ) -> _Flight:
        flight = _Flight(token, rows, requests, now)
        with self.idle:
            self.queued += len(rows)
        for r in rows:
            self.jobs.put((flight, r))
        while len(self.threads) < min(self.workers, self.queued):
            thread = threading.Thread(
                target=self._work, name=f"mail-{self.printer.kind}-{len(self.threads)}", daemon=True
            )
            self.threads.append(thread)
            thread.start()
        return flight

    def wait_started(self) -> None:
        """Until every queued call has been taken by a thread."""
        with self.idle:
            self.idle.wait_for(lambda: self.queued == 0)

    def close(self) -> None:
        for _ in self.threads:
            self.jobs.put(None)
        for t in self.threads:
            t.join()

    def _permit(self) -> None:
        stale = self.take_permit()
        with self.idle:
            self.report.calls += 1
            self.report.stale_permits += stale

    def _work(self) -> None:
        try:
            while (job := self.jobs.get()) is not None:
                flight, r = job
                with self.idle:
                    self.queued -= 1
                    self.idle.notify_all()
                outcome = _NO_CALL
                try:
                    seen_before, give_up = r.first_attempt_at is not None, r.attempt >= MAX_ATTEMPTS
                    outcome = _send_one(self.printer, flight.requests[r.pk], seen_before, give_up, self._permit)
                    outcome.answered_at = self.clock()
                except Exception:  # the thread goes on with the next call; this row's outcome stays unknown
                    logger.exception("mailing call for recipient %s failed outside the call's own handling", r.pk)
                finally:
                    flight.finish(r.pk, outcome)
        finally:
            connections.close_all()  # this thread's own (the database limiter's)


def _send_one(
    printer: Printer, request: Any, seen_before: bool, give_up: bool, permit: Callable[[], None] = lambda: None
) -> SendOutcome:
    """One row's calls, each HTTP request after ``permit()``, called right
    before the request goes out (``before_each_request``: the permit is
    taken once the body is built, not before the printer module builds it).
    ``give_up``: the attempt budget is spent; only look: the piece is found
    (Sent), or the printer has nothing (Error), or the outcome is still
    unknown (try the lookup again later)."""
    out = SendOutcome()
    try:
        with before_each_request(permit, to=printer.base_url):
            if seen_before or give_up:
                # It may exist already (a crash after the printer accepted, a
                # timeout after it created the piece, a key past its window):
                # look before submitting, never submit blind twice.
                try:
                    found = printer.lookup(request.reference)
                except PrinterError as exc:
                    # Whatever the error (a 401 after rotated keys, a 404),
                    # the printer has not said it holds nothing: the outcome
                    # stays unknown and the row keeps its key, never Error
                    # (whose retry may use a new one).
                    out.transient, out.retry_after = True, exc.retry_after
                    out.detail = f"looking the piece up failed: {exc.message}"[:500]
                    out.response = {"status": exc.status_code, "code": exc.code, "message": exc.message[:1000]}
                    return out
                if found is not None:
                    out.submission = found
                    return out
                if give_up:
                    out.message = ErrorMessages.FAILED_SUBMISSION_TO_PRINTER
                    out.detail = f"no piece after {MAX_ATTEMPTS} attempts; the printer holds none for this recipient"
                    return out
            out.submission = printer.submit(request)
        return out
    except PrinterError as exc:
        out.detail = exc.message[:500]
        out.response = {"status": exc.status_code, "code": exc.code, "message": exc.message[:1000]}
        if exc.permanent:
            bad_request = exc.status_code in BAD_REQUEST_STATUSES
            out.message = (
                ErrorMessages.FAILED_TO_MAKE_MAIL_PIECE if bad_request else ErrorMessages.FAILED_SUBMISSION_TO_PRINTER
            )
        else:
            out.transient, out.retry_after = True, exc.retry_after
        return out
    except Exception as exc:  # a bug must not take the batch down, nor guess the outcome
        logger.exception("printer call for %s failed unexpectedly", request.reference)
        out.transient, out.detail = True, f"unexpected error: {type(exc).__name__}"
        return out


def _record(
    campaign: Campaign,
    rows: list[CampaignRecipient],
    outcomes: dict[int, SendOutcome],
    token: uuid.UUID,
    actor: Actor,
    now: dt.datetime,
    printer_kind: str = "",
) -> Counter[str]:
    """``printer_kind``: the printer the batch's calls went to (by default the
    campaign's), which its mailpieces record."""
    counts: Counter[str] = Counter()
    by_pk = {r.pk: r for r in rows}
    printer_kind = printer_kind or campaign.printer
    with transaction.atomic():
        mine = CampaignRecipient.objects.filter(pk__in=list(by_pk), claim_token=token)
        held = dict(mine.select_for_update().values_list("pk", "status"))
        counts["lost_claim"] = len(rows) - len(held)
        sent: list[int] = []
        pieces: list[Mailpiece] = []
        failed: defaultdict[tuple[str, str, str], list[int]] = defaultdict(list)
        retry: defaultdict[tuple[str, str], list[int]] = defaultdict(list)
        retry_after = 0.0
        answered = now
        for pk, out in outcomes.items():
            if pk not in held:
                continue
            r = by_pk[pk]
            reference = r.json.get("submission", {}).get("reference", "") if isinstance(r.json, dict) else ""
            reference = reference or submission_key(
                org_id=campaign.organization_id, recipient_id=pk, gen=r.submission_gen
            )
            if out.submission is not None:
                sent.append(pk)
                pieces.append(_piece(printer_kind, pk, out.submission, reference))
                continue
            if out.transient:
                retry[(held[pk], out.detail)].append(pk)
                backoff = min(MAX_BACKOFF, BACKOFF * 2**r.attempt).total_seconds()
                retry_after = max(retry_after, out.retry_after or 0.0, backoff)
                answered = max(answered, out.answered_at or now)
                continue
            failed[(held[pk], out.message, out.detail)].append(pk)
            pieces.append(
                Mailpiece(
                    recipient_id=pk,
                    printer=printer_kind,
                    reference=reference,
                    status=MailpieceStatus.ERROR,
                    status_at=now,
                    last_vendor_status=str(out.response.get("code") or out.response.get("status") or "")[:100],
                )
            )
        created, refused = _store_pieces(pieces)
        conflicts: list[int] = []
        for piece in refused:  # the printer answered with an id we already hold for another piece
            if piece.recipient_id not in sent:
                continue  # an Error record: the row's own failure is already recorded
            sent.remove(piece.recipient_id)
            conflicts.append(piece.recipient_id)
            detail = f"the printer answered with id {piece.printer_id}, which another mailpiece already has: check it"
            failed[(held[piece.recipient_id], ErrorMessages.FAILED_SUBMISSION_TO_PRINTER, detail)].append(
                piece.recipient_id
            )
        for pk, json in CampaignRecipient.objects.filter(pk__in=conflicts).values_list("pk", "json"):
            # It accepted something under this row's key: the Error must not
            # read as "nothing at the printer" (a retry keeps the key).  The
            # json as stored (the claim's copy predates the saved request).
            json = json if isinstance(json, dict) else {}
            CampaignRecipient.objects.filter(pk=pk).update(json={**json, PRINTER_MAY_HAVE_IT: True})
        by_status: defaultdict[str, list[int]] = defaultdict(list)
        for piece in created:
            by_status[piece.status].append(piece.pk)
        for status, ids in by_status.items():
            insert_history(
                MailpieceTransition,
                obj_field="mailpiece",
                ids=ids,
                from_status="",
                to_status=status,
                actor=actor,
                reason="submitted to the printer" if status != MailpieceStatus.ERROR else "the printer refused it",
                at=now,
            )
        if sent:
            moved = recipients_bulk_transition(
                queryset=CampaignRecipient.objects.filter(pk__in=sent, claim_token=token),
                method="mark_sent",
                actor=actor,
                reason="the printer has the piece",
            )
            counts[Status.SENT] += len(moved)
        not_before = answered + timedelta(seconds=retry_after)
        for (status, detail), ids in retry.items():
            # The last failure stays visible to ops while the row waits.
            CampaignRecipient.objects.filter(pk__in=ids).update(attempt=F("attempt") + 1, error_detail=detail)
            if status == Status.SENDING:
                moved = recipients_bulk_transition(
                    queryset=CampaignRecipient.objects.filter(pk__in=ids, claim_token=token),
                    method="requeue_sending",
                    actor=actor,
                    reason=UNKNOWN_OUTCOME,
                    not_before=not_before,
                )
                counts["retry_later"] += len(moved)
            else:  # Scheduled: stays Scheduled, free again after the backoff
                counts["retry_later"] += CampaignRecipient.objects.filter(pk__in=ids, claim_token=token).update(
                    claim_token=None, lease_until=not_before, updated=now
                )
        for (status, message, detail), ids in failed.items():
            method = "fail" if status == Status.SENDING else "fail_queued"
            moved = recipients_bulk_transition(
                queryset=CampaignRecipient.objects.filter(pk__in=ids, claim_token=token),
                method=method,
                actor=actor,
                reason=message,
                message=message,
                detail=detail,
            )
            counts[message] += len(moved)
    return counts


def _store_pieces(pieces: list[Mailpiece]) -> tuple[list[Mailpiece], list[Mailpiece]]:
    """Insert the batch's mailpieces; when one breaks a unique constraint (a
    printer id already recorded), insert them one by one so the others are
    kept, and return the refused ones: one bad record never sinks a batch
    the printer already holds (nor, retried, every batch after it)."""
    try:
        with transaction.atomic():
            return Mailpiece.objects.bulk_create(pieces), []
    except IntegrityError:
        pass
    created, refused = [], []
    for piece in pieces:
        try:
            with transaction.atomic():
                piece.save(force_insert=True)
            created.append(piece)
        except IntegrityError:
            piece.pk = None
            refused.append(piece)
    return created, refused


def _piece(printer_kind: str, recipient_id: int, submission: Submission, reference: str) -> Mailpiece:
    """The Mailpiece of an accepted submission.  A test-mode piece (Stannp
    answers id "0" for every one) is kept without the printer's id, with
    status Test, so the unique (printer, printer id) constraint holds."""
    printer_id = submission.printer_id
    status = MailpieceStatus.SUBMITTED
    if submission.status == MailpieceStatus.TEST or printer_id in ("", "0"):
        printer_id, status = "", MailpieceStatus.TEST
    return Mailpiece(
        recipient_id=recipient_id,
        printer=printer_kind,
        printer_id=printer_id[:100],
        reference=(submission.reference or reference)[:100],
        status=status,
        status_at=timezone.now(),
    )


def _fail_waiting(campaign: Campaign, problem: str, actor: Actor, today: dt.date, now: dt.datetime) -> int:
    """Billing is not ready: the rows waiting to be mailed become Error.  Not
    a row that was sent before (a crash or a timeout after the printer took
    it): its piece may be in the mail, so it waits, saying why, and its next
    attempt (once billing works) looks the piece up first."""
    sent_before = campaign.recipients.filter(
        Q(status=Status.SENDING_STAGED) | scheduled_due(campaign, today, now), first_attempt_at__isnull=False
    )
    recipients_wait_saying(queryset=sent_before, why=f"billing is not ready ({problem})")
    waiting = (Q(status=Status.SENDING_STAGED) | scheduled_due(campaign, today, now)) & Q(first_attempt_at__isnull=True)
    return recipients_fail_queued(
        rows=campaign.recipients.filter(waiting),
        message=ErrorMessages.BILLING_NOT_READY,
        detail=problem,
        actor=actor,
        chunk=CHUNK,
    )
