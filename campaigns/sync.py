"""Recipient sync: the one way an audience enters a campaign.

``recipients_sync`` takes any iterable of dicts (field names of
``CampaignRecipient``; unknown keys are kept in ``json["extra"]``; keys starting
with ``_`` are metadata such as ``_line``), validates each row, and creates the
new ones in batches: Pending when valid, Skipped with a reason and the errors in
plain words when not.  Rows whose natural key the campaign already has are
counted, never duplicated and never changed.  The CSV importer is one caller;
an integration (a CRM push, an API) is another.  The inserts themselves are
``campaigns/recipient_insert.py``'s.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, cast

from django.db import IntegrityError, router, transaction
from django.utils import timezone

from campaigns.models import Campaign, CampaignRecipient
from campaigns.recipient_insert import (
    CreatedIds,
    NewRecipient,
    recipient_ids_by_key,
    recipients_insert,
    recipients_refresh_statistics,
)
from campaigns.selectors import campaign_countries
from campaigns.services import recipients_record_created
from campaigns.validation import RECIPIENT_FIELDS, ValidatedRow, recipient_validate, storable
from common.fsm import Actor

Status = CampaignRecipient.Status

MAX_REPORTED_LINES = 1000  # the report keeps the first N problem lines and counts them all
# Rows an import must create before it refreshes the planner's statistics
# (PostgreSQL): a few rows change nothing the planner relies on.
ANALYZE_AFTER = 1000


class SyncError(Exception):
    """The input as a whole cannot be imported (empty file, missing column...)."""


@dataclass
class ImportReport:
    """What an import did, kept on ``Campaign.import_report`` for the admin."""

    source: str = "sync"
    dry_run: bool = False
    started: str = field(default_factory=lambda: timezone.now().isoformat())
    finished: str = ""
    status: str = "running"  # running | complete | failed | rejected | interrupted
    rows_read: int = 0
    created: int = 0
    already_present: int = 0
    duplicates_in_file: int = 0
    by_status: Counter[str] = field(default_factory=Counter)
    by_skip_reason: Counter[str] = field(default_factory=Counter)
    unparseable_count: int = 0
    unparseable: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    qualification: dict[str, int] = field(default_factory=dict)
    # Per-row trail for the dry run only: (line, natural key, what happened, recipient id).
    trail: list[tuple[int | None, str, str, int | None]] | None = None

    def add_unparseable(self, line: int, message: str) -> None:
        self.unparseable_count += 1
        if len(self.unparseable) < MAX_REPORTED_LINES:
            self.unparseable.append({"line": line, "message": message})

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "dry_run": self.dry_run,
            "started": self.started,
            "finished": self.finished,
            "status": self.status,
            "rows_read": self.rows_read,
            "created": self.created,
            "already_present": self.already_present,
            "duplicates_in_file": self.duplicates_in_file,
            "by_status": dict(sorted(self.by_status.items())),
            "by_skip_reason": dict(sorted(self.by_skip_reason.items())),
            "unparseable_count": self.unparseable_count,
            "unparseable": self.unparseable,
            "errors": self.errors,
            "qualification": self.qualification,
        }


def _chunks(rows: Iterable[Mapping[str, Any]], size: int) -> Iterator[list[Mapping[str, Any]]]:
    it = iter(rows)
    while batch := list(islice(it, size)):
        yield batch


_KNOWN_KEYS = frozenset({*RECIPIENT_FIELDS, "extra", "_line"})


def _json_value(value: Any) -> Any:
    """A value the json column can store on every database: plain JSON types
    kept, anything else as text, unstorable characters (NUL) escaped."""
    if isinstance(value, str):
        return storable(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, Mapping):
        return {storable(str(k)): _json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    return storable(str(value))


def _new(raw: Mapping[str, Any], row: ValidatedRow) -> NewRecipient:
    payload: dict[str, Any] = {}
    extra = raw.get("extra")
    if extra:
        # An integration may send anything here: keep it, never crash on it.
        payload["extra"] = _json_value(extra) if isinstance(extra, Mapping) else {"extra": _json_value(extra)}
    others = raw.keys() - _KNOWN_KEYS  # a set operation in C: most rows have no unknown key
    unknown = {k: raw[k] for k in others if not str(k).startswith("_")} if others else None
    if unknown:
        payload.setdefault("extra", {}).update(
            {storable(str(k)): "" if v is None else storable(str(v)) for k, v in unknown.items()}
        )
    # What validation says about the row (its errors, what was received):
    # shaped by the validation module, which owns those keys.
    payload.update(row.json)
    status = Status.SKIPPED if row.skip_reason else Status.PENDING
    return NewRecipient(row.natural_key, row.data, str(status), row.skip_reason, payload)


INSERT_ATTEMPTS = 5
Trail = list[tuple[int | None, str, str, NewRecipient | int | None]]


def _plan(
    batch: list[Mapping[str, Any]], validated: list[ValidatedRow], existing: dict[str, int], created_ids: CreatedIds
) -> tuple[list[NewRecipient], Counter[str], Trail]:
    """What to insert, and what each row of ``batch`` is."""
    seen: set[str] = set()
    new: list[NewRecipient] = []
    counts: Counter[str] = Counter()
    # The last item is a recipient id, or the new row (its id is known after the insert).
    trail: Trail = []
    for raw, row in zip(batch, validated, strict=True):
        key = row.natural_key
        if key in existing:
            # A row this very import created is a repeat within the input.
            kind = "duplicate_in_file" if existing[key] in created_ids else "already_present"
            counts[kind] += 1
            trail.append((raw.get("_line"), key, kind, existing[key]))
        elif key in seen:
            counts["duplicate_in_file"] += 1
            trail.append((raw.get("_line"), key, "duplicate_in_file", None))
        else:
            seen.add(key)
            item = _new(raw, row)
            new.append(item)
            trail.append((raw.get("_line"), key, "created", item))
    return new, counts, trail


def _sync_batch(
    *,
    campaign: Campaign,
    batch: list[Mapping[str, Any]],
    countries: frozenset[str] | None,
    created_ids: CreatedIds,
    actor: Actor,
    report: ImportReport,
) -> None:
    validated = [recipient_validate(raw, countries=countries, enrichment=campaign.address_enrichment) for raw in batch]
    keys = {v.natural_key for v in validated}
    for attempt in range(1, INSERT_ATTEMPTS + 1):
        try:
            # Looked up inside the insert's transaction: on SQLite the write
            # lock is held, so nobody inserts in between; on PostgreSQL a
            # concurrent import of the same keys makes the insert fail, and
            # the next attempt finds its rows.
            with transaction.atomic(using=router.db_for_write(CampaignRecipient)):
                existing = recipient_ids_by_key(campaign=campaign, keys=keys)
                new, counts, trail = _plan(batch, validated, existing, created_ids)
                recipients_insert(campaign=campaign, rows=new)
                # The history helper reads only pk, status and skip_reason.
                created = cast("list[CampaignRecipient]", new)
                recipients_record_created(recipients=created, actor=actor, reason=f"import: {report.source}"[:500])
        except IntegrityError:
            # Each failed attempt means another import committed some of
            # these keys, which the next attempt sees: progress, so a few
            # attempts end any race; more would hide a real fault.
            if attempt == INSERT_ATTEMPTS:
                raise
            continue
        break
    created_ids.add(item.pk for item in new if item.pk is not None)
    report.created += len(new)
    report.already_present += counts["already_present"]
    report.duplicates_in_file += counts["duplicate_in_file"]
    for item in new:
        report.by_status[item.status] += 1
        if item.skip_reason:
            report.by_skip_reason[item.skip_reason] += 1
    if report.trail is not None:
        for line, key, kind, ref in trail:
            report.trail.append((line, key, kind, ref.pk if isinstance(ref, NewRecipient) else ref))


def recipients_sync(
    *,
    campaign: Campaign,
    rows: Iterable[Mapping[str, Any]],
    actor: Actor,
    dry_run: bool = False,
    report: ImportReport | None = None,
    batch_size: int = 2000,
    save_report: bool = True,
    progress: Callable[[ImportReport], None] | None = None,
) -> ImportReport:
    """Validate and create the recipients of ``rows``; returns the report.

    Each batch commits on its own, so memory stays flat on any input size; if
    something fails midway, the report (status "failed", counts so far) is
    still saved and a re-run creates only what is missing.  ``dry_run`` runs
    the same code in a transaction that is rolled back.
    """
    if batch_size < 1:
        # islice(rows, 0) is empty: every row would be silently dropped.
        raise ValueError(f"batch_size must be at least 1, not {batch_size}")
    report = report or ImportReport()
    report.dry_run = dry_run
    if dry_run:
        with transaction.atomic():
            _run(campaign, rows, actor, report, batch_size, progress)
            transaction.set_rollback(True)
        return report
    try:
        _run(campaign, rows, actor, report, batch_size, progress)
    except SyncError as exc:
        report.status = "rejected"
        report.errors.append(str(exc))
        raise
    except Exception as exc:
        report.status = "failed"
        report.errors.append(f"stopped after {report.rows_read} rows: {type(exc).__name__}: {exc}")
        raise
    finally:
        if report.status == "running":  # interrupted (Ctrl-C, SIGTERM): say so
            report.status = "interrupted"
        report.finished = timezone.now().isoformat()
        if save_report:
            campaign_save_import_report(campaign=campaign, report=report)
    return report


def _run(
    campaign: Campaign,
    rows: Iterable[Mapping[str, Any]],
    actor: Actor,
    report: ImportReport,
    batch_size: int,
    progress: Callable[[ImportReport], None] | None,
) -> None:
    countries = campaign_countries(campaign)
    created_ids = CreatedIds()
    for batch in _chunks(rows, batch_size):
        report.rows_read += len(batch)
        _sync_batch(
            campaign=campaign, batch=batch, countries=countries, created_ids=created_ids, actor=actor, report=report
        )
        if progress:
            progress(report)
    if report.created >= ANALYZE_AFTER and not report.dry_run:
        recipients_refresh_statistics()
    report.status = "complete"
    report.finished = timezone.now().isoformat()


def campaign_save_import_report(*, campaign: Campaign, report: ImportReport) -> None:
    if report.dry_run:
        return
    campaign.import_report = report.as_dict()
    Campaign.objects.filter(pk=campaign.pk).update(import_report=campaign.import_report)
