"""Recipient sync: the one way an audience enters a campaign.

``recipients_sync`` takes any iterable of dicts (field names of
``CampaignRecipient``; unknown keys are kept in ``json["extra"]``; keys starting
with ``_`` are metadata such as ``_line``), validates each row, and creates the
new ones in batches: Pending when valid, Skipped with a reason and the errors in
plain words when not.  Rows whose natural key the campaign already has are
counted, never duplicated, and changed only with ``update=True``: then a
recipient not yet in flight (Pending, Skipped, Blacklisted) whose data differs
takes the row's data and is validated again (back to Pending, or Skipped with
the new errors); one already claimed, proofing or mailed is left as it is and
counted as in flight.  The CSV importer is one caller;
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
from campaigns.recipient_json import (
    ALTERED_FIELDS,
    APPROVAL_ERRORS,
    EXTRA,
    SKIP_DETAILS,
    SOURCE_ROW,
    VALIDATION_ERRORS,
)
from campaigns.selectors import campaign_countries
from campaigns.services import recipients_bulk_transition, recipients_record_created
from campaigns.validation import RECIPIENT_FIELDS, ValidatedRow, recipient_validate, storable
from common.fsm import Actor

Status = CampaignRecipient.Status
SkipReason = CampaignRecipient.SkipReason

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
    updated: int = 0  # with update=True: existing recipients given the row's data
    in_flight: int = 0  # with update=True: rows whose recipient is past the point of changing
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
            "updated": self.updated,
            "in_flight": self.in_flight,
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
# A re-import may change these; later states belong to the pipeline.
UPDATABLE = frozenset({Status.PENDING, Status.SKIPPED, Status.BLACKLISTED})
# What recipient.json holds about the row as received and its last verdict:
# an update replaces all of it.
_ROW_KEYS = (EXTRA, SOURCE_ROW, ALTERED_FIELDS, VALIDATION_ERRORS, APPROVAL_ERRORS, SKIP_DETAILS)


@dataclass(slots=True)
class _Update:
    recipient: CampaignRecipient
    raw: Mapping[str, Any]
    row: ValidatedRow


def _unchanged(r: CampaignRecipient, raw: Mapping[str, Any], row: ValidatedRow) -> bool:
    if any(getattr(r, name) != row.data[name] for name in RECIPIENT_FIELDS):
        return False
    return (r.json or {}).get(EXTRA) == _new(raw, row).json.get(EXTRA)


def _plan(
    batch: list[Mapping[str, Any]],
    validated: list[ValidatedRow],
    existing: dict[str, int],
    created_ids: CreatedIds,
    stored: Mapping[int, CampaignRecipient] | None = None,
    updated_ids: set[int] | None = None,
) -> tuple[list[NewRecipient], Counter[str], Trail, list[_Update]]:
    """What to insert, what to update (``stored`` given: the update mode), and
    what each row of ``batch`` is."""
    seen: set[str] = set()
    new: list[NewRecipient] = []
    updates: list[_Update] = []
    counts: Counter[str] = Counter()
    # The last item is a recipient id, or the new row (its id is known after the insert).
    trail: Trail = []
    for raw, row in zip(batch, validated, strict=True):
        key = row.natural_key
        line = raw.get("_line")
        if key in existing:
            pk = existing[key]
            # A row this very import created (or updated) is a repeat within the input.
            if pk in created_ids or key in seen or (updated_ids is not None and pk in updated_ids):
                kind = "duplicate_in_file"
            elif stored is None:
                kind = "already_present"
            else:
                seen.add(key)  # a later row with this key is a repeat within the input
                if stored[pk].status not in UPDATABLE:
                    kind = "in_flight"
                elif _unchanged(stored[pk], raw, row):
                    kind = "already_present"
                else:
                    kind = "updated"
                    updates.append(_Update(stored[pk], raw, row))
            counts[kind] += 1
            trail.append((line, key, kind, pk))
        elif key in seen:
            counts["duplicate_in_file"] += 1
            trail.append((line, key, "duplicate_in_file", None))
        else:
            seen.add(key)
            item = _new(raw, row)
            new.append(item)
            trail.append((line, key, "created", item))
    return new, counts, trail, updates


def _stored(campaign: Campaign, ids: Iterable[int]) -> dict[int, CampaignRecipient]:
    """The recipients an update may change, locked until the batch commits (a
    claim waits, so a row is never changed under a worker that took it)."""
    rows = (
        CampaignRecipient.objects.select_for_update()
        .filter(campaign=campaign, pk__in=list(ids))
        .only("pk", "status", "skip_reason", "json", *RECIPIENT_FIELDS)
    )
    return {r.pk: r for r in rows}


def _apply_updates(updates: list[_Update], actor: Actor, source: str) -> None:
    """Give each recipient its row's data and verdict: Skipped/Blacklisted ones
    go back to Pending first; the ones whose new data fails are Skipped with
    the new errors (the qualification that follows the import takes the rest)."""
    if not updates:
        return
    reason = f"import update: {source}"[:500]
    back = [u.recipient.pk for u in updates if u.recipient.status != Status.PENDING]
    if back:
        recipients_bulk_transition(
            queryset=CampaignRecipient.objects.filter(pk__in=back), method="revalidate", actor=actor, reason=reason
        )
    changed = []
    failing: dict[str, list[int]] = {}
    for u in updates:
        r = u.recipient
        for name in RECIPIENT_FIELDS:
            setattr(r, name, u.row.data[name])
        json = {k: v for k, v in (r.json or {}).items() if k not in _ROW_KEYS}
        json.update(_new(u.raw, u.row).json)
        r.json = json
        changed.append(r)
        if u.row.skip_reason:
            failing.setdefault(u.row.skip_reason, []).append(r.pk)
    CampaignRecipient.objects.bulk_update(changed, ["json", *RECIPIENT_FIELDS], batch_size=500)
    for skip_reason, ids in failing.items():
        recipients_bulk_transition(
            queryset=CampaignRecipient.objects.filter(pk__in=ids),
            method="skip",
            actor=actor,
            reason=reason,
            skip_reason=skip_reason,
        )


def _sync_batch(
    *,
    campaign: Campaign,
    batch: list[Mapping[str, Any]],
    countries: frozenset[str] | None,
    created_ids: CreatedIds,
    actor: Actor,
    report: ImportReport,
    updated_ids: set[int] | None = None,
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
                stored = _stored(campaign, existing.values()) if updated_ids is not None else None
                new, counts, trail, updates = _plan(batch, validated, existing, created_ids, stored, updated_ids)
                recipients_insert(campaign=campaign, rows=new)
                # The history helper reads only pk, status and skip_reason.
                created = cast("list[CampaignRecipient]", new)
                recipients_record_created(recipients=created, actor=actor, reason=f"import: {report.source}"[:500])
                _apply_updates(updates, actor, report.source)
        except IntegrityError:
            # Each failed attempt means another import committed some of
            # these keys, which the next attempt sees: progress, so a few
            # attempts end any race; more would hide a real fault.
            if attempt == INSERT_ATTEMPTS:
                raise
            continue
        break
    created_ids.add(item.pk for item in new if item.pk is not None)
    if updated_ids is not None:
        updated_ids.update(u.recipient.pk for u in updates)
    report.created += len(new)
    report.already_present += counts["already_present"]
    report.duplicates_in_file += counts["duplicate_in_file"]
    report.updated += counts["updated"]
    report.in_flight += counts["in_flight"]
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
    update: bool = False,
) -> ImportReport:
    """Validate and create the recipients of ``rows``; returns the report.

    Each batch commits on its own, so memory stays flat on any input size; if
    something fails midway, the report (status "failed", counts so far) is
    still saved and a re-run creates only what is missing.  ``dry_run`` runs
    the same code in a transaction that is rolled back.  ``update`` lets rows
    change the recipients they match while those are not yet in flight.
    """
    if batch_size < 1:
        # islice(rows, 0) is empty: every row would be silently dropped.
        raise ValueError(f"batch_size must be at least 1, not {batch_size}")
    report = report or ImportReport()
    report.dry_run = dry_run
    if dry_run:
        with transaction.atomic():
            _run(campaign, rows, actor, report, batch_size, progress, update)
            transaction.set_rollback(True)
        return report
    try:
        _run(campaign, rows, actor, report, batch_size, progress, update)
    except SyncError as exc:
        report.status = "rejected"
        # The saved report is what the admin shows: the plain words where the
        # error has them (no command-line options); the command prints the
        # exception itself.
        report.errors.append(str(getattr(exc, "plain", "") or exc))
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
    update: bool = False,
) -> None:
    countries = campaign_countries(campaign)
    created_ids = CreatedIds()
    updated_ids: set[int] | None = set() if update else None
    for batch in _chunks(rows, batch_size):
        report.rows_read += len(batch)
        _sync_batch(
            campaign=campaign,
            batch=batch,
            countries=countries,
            created_ids=created_ids,
            actor=actor,
            report=report,
            updated_ids=updated_ids,
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
