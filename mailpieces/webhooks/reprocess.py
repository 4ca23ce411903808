"""Re-reading stored deliveries after a parsing or mapping fix (``reprocess_webhooks``).

The inbox keeps every authentic delivery byte for byte, so a status we could
not map yesterday (recorded as ignored, status Unknown) or a body we could not
read (quarantined) can be read again today.  Re-reading is idempotent:

- a report recorded before and *applied* stands as it is (never applied twice);
- one recorded and not applied (ignored, waiting, a problem) is replaced by its
  new reading and decided again, through the same monotonic walk;
- a new report (the fix found more in the body) is recorded and decided;
- a quarantined delivery that now reads is marked processed; one that still
  does not keeps its quarantine with the new reason.

Only processed and quarantined rows are re-read: pending ones are the normal
run's.  ``dry_run`` does everything in a transaction and rolls it back, so the
counts are exactly what a real run would do.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from common.fsm import Actor
from mailpieces.models import InboundWebhook
from mailpieces.webhooks.processing import ProcessReport, apply_reports, reports_from_rows

CHUNK_ROWS = 500
State = InboundWebhook.State


class _DryRun(Exception):
    """Rolls a dry run's chunk back."""


@dataclass
class ReprocessReport:
    rows: int = 0
    unquarantined: int = 0  # quarantined rows that read now
    still_broken: int = 0  # rows that cannot be read
    result: ProcessReport | None = None

    def __str__(self) -> str:
        parts = [f"{self.rows} deliveries re-read"]
        if self.result is not None:
            parts.append(f"{self.result.applied} reports applied, {self.result.ignored} ignored")
            if self.result.waiting:
                parts.append(f"{self.result.waiting} waiting for their piece")
            if self.result.received:
                parts.append(f"{self.result.received} recipients received")
        if self.unquarantined:
            parts.append(f"{self.unquarantined} quarantined deliveries now read")
        if self.still_broken:
            parts.append(f"{self.still_broken} still cannot be read")
        return ", ".join(parts)


def reprocess_queryset(
    *, printer: str, since: dt.datetime, until: dt.datetime | None = None
) -> QuerySet[InboundWebhook]:
    rows = InboundWebhook.objects.filter(
        printer=printer, received_at__gte=since, state__in=[State.PROCESSED, State.QUARANTINED]
    )
    if until is not None:
        rows = rows.filter(received_at__lt=until)
    return rows.order_by("pk")


def webhooks_reprocess(
    *,
    printer: str,
    since: dt.datetime,
    until: dt.datetime | None = None,
    dry_run: bool = False,
    actor: Actor | None = None,
    progress: Callable[[int], object] | None = None,
) -> ReprocessReport:
    """Re-read ``printer``'s stored deliveries received in [since, until)."""
    ids = list(reprocess_queryset(printer=printer, since=since, until=until).values_list("pk", flat=True))
    return _reprocess(ids, actor or Actor("command:reprocess_webhooks"), dry_run=dry_run, progress=progress)


def webhooks_reprocess_ids(*, ids: list[int], actor: Actor, dry_run: bool = False) -> ReprocessReport:
    """Re-read the stored deliveries ``ids`` (the admin's "Re-read selected
    deliveries"), by the same rules as :func:`webhooks_reprocess`: only
    processed and quarantined rows are re-read; pending ones are left to the
    normal run (``ReprocessReport.rows`` counts only the rows re-read)."""
    wanted = InboundWebhook.objects.filter(pk__in=ids, state__in=[State.PROCESSED, State.QUARANTINED])
    return _reprocess(sorted(wanted.values_list("pk", flat=True)), actor, dry_run=dry_run)


def _reprocess(
    ids: list[int], actor: Actor, *, dry_run: bool, progress: Callable[[int], object] | None = None
) -> ReprocessReport:
    """Re-read the rows ``ids`` (processed or quarantined), ``CHUNK_ROWS`` a transaction."""
    report = ReprocessReport(result=ProcessReport())
    assert report.result is not None
    for start in range(0, len(ids), CHUNK_ROWS):
        rows = list(InboundWebhook.objects.filter(pk__in=ids[start : start + CHUNK_ROWS]).order_by("pk"))
        reports, broken = reports_from_rows(rows)
        broken_ids = {pk for pk, _ in broken}
        unquarantined: list[int] = []
        result = ProcessReport()
        try:
            with transaction.atomic():
                result = apply_reports(reports, now=timezone.now(), redecide=True, actor=actor)
                readable = [r for r in rows if r.pk not in broken_ids]
                unquarantined = [r.pk for r in readable if r.state == State.QUARANTINED]
                InboundWebhook.objects.filter(pk__in=unquarantined).update(state=State.PROCESSED, error="")
                for row in readable:
                    count = sum(1 for rep in reports if rep.inbox_id == row.pk)
                    if row.events_count != count:
                        InboundWebhook.objects.filter(pk=row.pk).update(events_count=count)
                for pk, problem in broken:
                    InboundWebhook.objects.filter(pk=pk, state=State.QUARANTINED).update(error=problem)
                if dry_run:
                    raise _DryRun
        except _DryRun:
            pass
        report.rows += len(rows)
        report.unquarantined += len(unquarantined)
        report.still_broken += len(broken)
        report.result.add(result)
        if progress is not None:
            progress(len(rows))
    return report
