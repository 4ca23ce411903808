"""Asking the printers about pieces they have gone quiet on (``refresh_mailpieces``, issue 10).

Webhooks get lost: a vendor pauses an endpoint, a scan is never sent.  This
backfill looks up each *stale* piece at its printer and applies what the
printer's own object says through the same path as webhooks
(:func:`mailpieces.webhooks.processing.apply_reports`): recorded once,
applied only when it moves the piece forward, never back.

Which pieces are asked (:func:`stale_mailpieces`):

- not in a final state (:data:`mailpieces.status.TERMINAL`: Cancelled, Error,
  Test).  Delivered and Returned stay eligible: a delivered piece can still
  come back (Delivered → Returned) and a returned one be cancelled, and a
  lookup is the only way to hear of it when the webhook is lost;
- no status report (:class:`MailpieceEvent`) recorded, no transition made
  and no answer to a lookup (``Mailpiece.checked_at``) in the last
  ``stale_days`` days, and the piece itself older than that: a piece whose
  printer answered with what we knew is asked again only after another
  ``stale_days``, not on every run;
- younger than ``max_age_days`` (default :data:`MAX_AGE_DAYS`): past that, a
  piece is settled, or lost, and a person should look, not a loop.  Without
  this bound every delivered piece (and every IntelliPrint piece, which has
  no delivery status) would be asked about on every run forever;
- with a printer id and a reference (a piece without them is the mailing
  stage's to reconcile, not ours).

Each piece costs one ``lookup`` at its printer, outside any transaction,
after a permit from the printer's shared rate limiter.  A transient failure
is counted and skipped (the next run asks again); what was learnt is applied
in one transaction per chunk of pieces.  The report's ``event_id``
(``lookup:<printer id>:<vendor status>[:<epoch>]``) makes a second run that
hears the same thing record nothing.  A dry run does the lookups and the
apply, then rolls the apply back: its numbers are a real run's.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from campaigns.mailing.limits import printer_permits
from common.fsm import Actor
from common.http import before_each_request
from mailpieces.models import Mailpiece, MailpieceEvent, MailpieceTransition
from mailpieces.status import TERMINAL
from mailpieces.webhooks.processing import ProcessReport, Report, apply_reports, order_key
from printers.base import Printer, PrinterError
from printers.kinds import PrinterKind
from printers.registry import get_printer

logger = logging.getLogger(__name__)

Outcome = MailpieceEvent.Outcome

DEFAULT_STALE_DAYS = 7
MAX_AGE_DAYS = 90
# Pieces looked up before their reports are applied (one transaction).
CHUNK = 100
# A printer that refuses this many lookups in a row (a revoked key, a wrong
# base URL) is not asked about the rest of its pieces in this run.
MAX_REFUSALS_IN_A_ROW = 5
ACTOR_SOURCE = "command:refresh_mailpieces"

# (printer kind, pieces asked so far in this run, pieces to ask in this run)
Progress = Callable[[str, int, int], object]


class _DryRun(Exception):
    """Rolls a dry run's chunk back."""


@dataclass
class PrinterRefresh:
    """What one printer said about its stale pieces."""

    kind: str
    asked: int = 0
    moved: int = 0  # the report moved the piece forward
    unchanged: int = 0  # the report was recorded before, or is behind, equal to or not one we can apply
    not_found: int = 0  # the printer holds no piece under our reference
    failed: int = 0  # the lookup failed (transient: asked again next run), or the apply did
    no_status: int = 0  # found, but the printer's object names no status
    mismatched: int = 0  # found under our reference with another printer id: left for a person
    received: int = 0  # recipients moved Sent -> Received
    skipped: str = ""  # why the printer was not asked at all (disabled, no key)
    stopped: str = ""  # why asking stopped part-way (refusals in a row)
    errors: list[str] = field(default_factory=list)  # a few distinct failure messages
    refusals: int = field(default=0, repr=False)  # permanent lookup failures in a row, across chunks

    @property
    def label(self) -> str:
        return PrinterKind(self.kind).label if self.kind in PrinterKind.values else self.kind

    def __str__(self) -> str:
        if self.skipped:
            return f"Did not ask {self.label}: {self.skipped}"
        text = (
            f"Asked {self.label} about {self.asked} piece{'s' if self.asked != 1 else ''}: "
            f"{self.moved} moved forward, {self.unchanged} unchanged, {self.not_found} not found, {self.failed} failed"
        )
        extras = [
            f"{self.no_status} answered without a status" if self.no_status else "",
            f"{self.mismatched} found under another printer id (not applied)" if self.mismatched else "",
            f"{self.received} recipients now Received" if self.received else "",
        ]
        extras = [e for e in extras if e]
        if extras:
            text += f" ({', '.join(extras)})"
        if self.stopped:
            text += f". Stopped early: {self.stopped}"
        return text


@dataclass
class RefreshReport:
    printers: list[PrinterRefresh] = field(default_factory=list)
    dry_run: bool = False

    def total(self, name: str) -> int:
        return sum(int(getattr(p, name)) for p in self.printers)

    @property
    def asked(self) -> int:
        return self.total("asked")

    @property
    def moved(self) -> int:
        return self.total("moved")

    @property
    def failed(self) -> int:
        return self.total("failed")

    def __str__(self) -> str:
        if not self.printers:
            return "No stale mailpieces: nothing to ask."
        return "\n".join(f"{p}." for p in self.printers)


# ---------------------------------------------------------------------------- selection
def stale_mailpieces(
    *,
    stale_days: int = DEFAULT_STALE_DAYS,
    printer: str | None = None,
    now: dt.datetime | None = None,
    max_age_days: int = MAX_AGE_DAYS,
) -> QuerySet[Mailpiece]:
    """Pieces not final, quiet for ``stale_days`` days and younger than ``max_age_days``."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=stale_days)
    recent_report = MailpieceEvent.objects.filter(mailpiece=OuterRef("pk"), created__gte=cutoff)
    recent_move = MailpieceTransition.objects.filter(mailpiece=OuterRef("pk"), created__gte=cutoff)
    pieces = (
        Mailpiece.objects.exclude(status__in=TERMINAL)
        .exclude(printer_id="")
        .exclude(reference="")
        .filter(created__lt=cutoff, created__gte=now - timedelta(days=max_age_days))
        .filter(Q(checked_at__isnull=True) | Q(checked_at__lt=cutoff))
        .filter(~Exists(recent_report), ~Exists(recent_move))
    )
    if printer is not None:
        pieces = pieces.filter(printer=printer)
    return pieces.order_by("pk")


# ---------------------------------------------------------------------------- the run
def mailpieces_refresh(
    *,
    stale_days: int = DEFAULT_STALE_DAYS,
    printer: str | None = None,
    limit: int | None = None,
    dry_run: bool = False,
    now: dt.datetime | None = None,
    progress: Progress | None = None,
    max_age_days: int = MAX_AGE_DAYS,
    actor: Actor | None = None,
) -> RefreshReport:
    """Ask each stale piece's printer about it and apply the answers (see the module docstring).

    ``printer`` limits the run to one printer kind (a ``ValueError`` for an
    unknown one); ``limit`` caps the pieces asked in this run; ``progress`` is
    called after each lookup.  A printer that cannot be built (disabled, no
    key) is reported as skipped, never raised."""
    if printer is not None and printer not in PrinterKind.values:
        raise ValueError(f"unknown printer {printer!r}: use one of {', '.join(PrinterKind.values)}")
    if stale_days < 0 or (limit is not None and limit < 0) or max_age_days < 0:
        raise ValueError("stale_days, limit and max_age_days must not be negative")
    now = now or timezone.now()
    actor = actor or Actor(ACTOR_SOURCE)
    report = RefreshReport(dry_run=dry_run)
    stale = stale_mailpieces(stale_days=stale_days, printer=printer, now=now, max_age_days=max_age_days)
    kinds = [printer] if printer else sorted(set(stale.order_by().values_list("printer", flat=True).distinct()))
    clients: dict[str, Printer] = {}
    for kind in kinds:
        result = PrinterRefresh(kind)
        report.printers.append(result)
        try:
            clients[kind] = get_printer(kind)
        except PrinterError as exc:
            result.skipped = exc.message
    total = stale.filter(printer__in=list(clients)).count()
    total = min(total, limit) if limit is not None else total
    done = 0  # pieces asked in this run

    def tick(kind: str) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(kind, done, total)

    for result in report.printers:
        client = clients.get(result.kind)
        if client is None:
            continue
        pieces = stale.filter(printer=result.kind)
        last_pk = 0
        while limit is None or done < limit:
            size = CHUNK if limit is None else min(CHUNK, limit - done)
            chunk = list(pieces.filter(pk__gt=last_pk).only("pk", "printer", "printer_id", "reference")[:size])
            if not chunk:
                break
            last_pk = chunk[-1].pk
            reports, answered = _ask(client, chunk, result, now, on_piece=tick)
            not_applied = _apply(reports, result, now=now, actor=actor, dry_run=dry_run) if reports else set()
            checked = sorted(pk for printer_id, pk in answered.items() if printer_id not in not_applied)
            if checked and not dry_run:
                Mailpiece.objects.filter(pk__in=checked).update(checked_at=now)
            if result.stopped:
                break
    return report


def _ask(
    printer: Printer,
    pieces: list[Mailpiece],
    result: PrinterRefresh,
    now: dt.datetime,
    *,
    on_piece: Callable[[str], None],
) -> tuple[list[Report], dict[str, int]]:
    """One lookup per piece, each request after a permit: the reports to
    apply, and the pieces the printer answered about (printer id: pk)."""
    take_permit = printer_permits(printer.kind)
    reports: list[Report] = []
    answered: dict[str, int] = {}
    for piece in pieces:
        if result.refusals >= MAX_REFUSALS_IN_A_ROW:
            result.stopped = (
                f"{result.label} refused {result.refusals} lookups in a row "
                f"({result.errors[-1] if result.errors else 'no reason given'}); "
                "the rest of its pieces are left for the next run"
            )
            break
        result.asked += 1
        try:
            # The permit is taken right before each request goes (docs/ratelimits.md).
            with before_each_request(take_permit, to=printer.base_url):
                found = printer.lookup(piece.reference)
            event = printer.lookup_report(found) if found is not None else None
        except PrinterError as exc:
            _failed(result, piece, exc.message)
            result.refusals = result.refusals + 1 if exc.permanent else 0
            continue
        except Exception as exc:  # the limiter's store, a bug: counted, never the run's end
            logger.exception("refresh: looking up %s piece %s failed", piece.printer, piece.printer_id)
            _failed(result, piece, f"{type(exc).__name__}: {exc}")
            result.refusals = 0
            continue
        finally:
            on_piece(printer.kind)
        result.refusals = 0
        if found is None or found.printer_id == piece.printer_id:
            # A piece held under another id is left for a person: asked (and
            # warned about) on every run until someone looks.
            answered[piece.printer_id] = piece.pk
        if found is None:
            result.not_found += 1
        elif found.printer_id != piece.printer_id:
            logger.warning(
                "refresh: %s holds %s under reference %s, but our piece %s says %s: not applied",
                piece.printer,
                found.printer_id,
                piece.reference,
                piece.pk,
                piece.printer_id,
            )
            result.mismatched += 1
        elif event is None:
            result.no_status += 1
        else:
            order = order_key(event.occurred_at, now, 0, len(reports))
            reports.append(Report(printer=piece.printer, event=event, inbox_id=None, order=order))
    return reports, answered


def _failed(result: PrinterRefresh, piece: Mailpiece, message: str) -> None:
    result.failed += 1
    logger.warning("refresh: looking up %s piece %s failed: %s", piece.printer, piece.printer_id, message)
    if message not in result.errors and len(result.errors) < 5:
        result.errors.append(message[:300])


def _apply(reports: list[Report], result: PrinterRefresh, *, now: dt.datetime, actor: Actor, dry_run: bool) -> set[str]:
    """Apply one chunk's reports in one transaction (rolled back in a dry run);
    if the chunk fails, each report on its own, so one cannot hold back the
    rest.  The printer ids whose report could not be applied."""
    not_applied: set[str] = set()
    try:
        _count(_apply_batch(reports, now=now, actor=actor, dry_run=dry_run), reports, result)
        return not_applied
    except Exception:
        logger.exception("refresh: applying %s %s reports failed; retrying them one by one", len(reports), result.kind)
    for r in reports:
        r.outcome, r.note, r.mailpiece_id = "", "", None
        try:
            _count(_apply_batch([r], now=now, actor=actor, dry_run=dry_run), [r], result)
        except Exception as exc:
            logger.exception("refresh: applying the report about %s piece %s failed", r.printer, r.event.printer_id)
            not_applied.add(r.event.printer_id)
            result.failed += 1
            if len(result.errors) < 5:
                result.errors.append(f"applying: {type(exc).__name__}: {exc}"[:300])
    return not_applied


def _apply_batch(reports: list[Report], *, now: dt.datetime, actor: Actor, dry_run: bool) -> ProcessReport:
    applied = ProcessReport()
    try:
        with transaction.atomic():
            applied = apply_reports(reports, now=now, actor=actor)
            if dry_run:
                raise _DryRun
    except _DryRun:
        pass
    return applied


def _count(applied: ProcessReport, reports: list[Report], result: PrinterRefresh) -> None:
    for r in reports:
        if r.outcome == Outcome.APPLIED:
            result.moved += 1
        else:  # ignored (behind, equal, unknown status), or recorded by an earlier run
            result.unchanged += 1
    result.received += applied.received
