"""Recipient sync: the one way an audience enters a campaign.

``recipients_sync`` takes any iterable of dicts (field names of
``CampaignRecipient``; unknown keys are kept in ``json["extra"]``; keys starting
with ``_`` are metadata such as ``_line``), validates each row, and creates the
new ones in batches: Pending when valid, Skipped with a reason and the errors in
plain words when not.  Rows whose natural key the campaign already has are
counted, never duplicated and never changed.  The CSV importer is one caller;
an integration (a CRM push, an API) is another.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import islice
from operator import itemgetter
from typing import Any, cast

from django.db import IntegrityError, connections, router, transaction
from django.utils import timezone

from campaigns.models import Campaign, CampaignRecipient
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


class CreatedIds:
    """The ids this import created, to tell a repeat within the input from a
    recipient that was already there (another import may create rows at the
    same time, so no id range can say it).  Sorted 8-byte integers: 800 kB for
    a million rows, where a set would take tens of MB."""

    def __init__(self) -> None:
        self._ids = array("q")

    def add(self, ids: Iterable[int]) -> None:
        new = sorted(ids)
        if new and self._ids and new[0] < self._ids[-1]:
            # Interleaved with another import's ids: rare, so a full re-sort is fine.
            self._ids = array("q", sorted([*self._ids, *new]))
        else:
            self._ids.extend(new)

    def __contains__(self, pk: object) -> bool:
        if not isinstance(pk, int):
            return False
        at = bisect_left(self._ids, pk)
        return at < len(self._ids) and self._ids[at] == pk


def _chunks(rows: Iterable[Mapping[str, Any]], size: int) -> Iterator[list[Mapping[str, Any]]]:
    it = iter(rows)
    while batch := list(islice(it, size)):
        yield batch


@dataclass(slots=True)
class NewRecipient:
    """A row about to be inserted.  Not a model instance on purpose: building
    100k CampaignRecipient objects (FSM state tracking included) and letting
    ``bulk_create`` prepare every field costs more than the insert itself."""

    natural_key: str
    data: dict[str, str]
    status: str
    skip_reason: str
    json: dict[str, Any]
    pk: int | None = None


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


def _insert(campaign: Campaign, rows: list[NewRecipient]) -> None:
    """Insert ``rows`` and set their ids; must run inside a transaction.

    PostgreSQL: the ids are drawn from the table's sequence first, then one
    ``COPY`` carries every row (no round trip per row, no read-back).
    SQLite: one ``executemany`` (in-process, already as fast as it gets), then
    the ids are read back by natural key.  Both are exact while other imports
    insert at the same time: a sequence never hands out an id twice, and the
    unique (campaign, natural key) constraint makes each key's row this
    insert's own (an id watermark would catch the other import's rows too).

    Columns are read from the model, and every column not coming from the row
    gets its model default (auto_now fields: now), prepared once per batch with
    the field's own ``get_db_prep_save``: a field added later is filled the
    same way ``bulk_create`` would fill it.
    """
    if not rows:
        return
    connection = connections[router.db_for_write(CampaignRecipient)]
    meta = CampaignRecipient._meta
    fields = [f for f in meta.concrete_fields if not f.primary_key]
    params = _row_params(campaign, rows, fields, connection)
    qn = connection.ops.quote_name
    # Only quoted model identifiers are interpolated; every value is a parameter.
    table, pk = qn(meta.db_table), qn(meta.pk.column)
    columns = ", ".join(qn(f.column) for f in fields)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
                [meta.db_table, meta.pk.column, len(rows)],
            )
            for r, (pk_value,) in zip(rows, cursor.fetchall(), strict=True):
                r.pk = pk_value
            # The raw psycopg cursor: its errors are wrapped by hand, so a key
            # conflict is Django's IntegrityError as with executemany.
            with (
                connection.wrap_database_errors,
                cursor.cursor.copy(f"COPY {table} ({pk}, {columns}) FROM STDIN") as copy,
            ):
                for r, values in zip(rows, params, strict=True):
                    copy.write_row((r.pk, *values))
            return
        cursor.executemany(f"INSERT INTO {table} ({columns}) VALUES ({', '.join(['%s'] * len(fields))})", params)  # noqa: S608
    ids = _ids_by_key(campaign, [r.natural_key for r in rows])
    for r in rows:
        r.pk = ids[r.natural_key]


def _row_params(
    campaign: Campaign, rows: list[NewRecipient], fields: list[Any], connection: Any
) -> list[tuple[Any, ...]]:
    """Each row's column values, prepared for ``connection``, in ``fields`` order."""
    now = timezone.now()
    constant: dict[str, Any] = {}
    for f in fields:
        if f.attname == "campaign_id":
            value: Any = campaign.pk
        elif getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False):
            value = now
        else:
            value = f.get_default()
        constant[f.attname] = f.get_db_prep_save(value, connection)
    json_field = CampaignRecipient._meta.get_field("json")
    row_values = itemgetter(*(f.attname for f in fields))
    params = []
    for r in rows:
        values = {
            **constant,
            **r.data,
            "natural_key": r.natural_key,
            "status": r.status,
            "skip_reason": r.skip_reason,
        }
        if r.json:
            values["json"] = json_field.get_db_prep_save(r.json, connection)
        params.append(row_values(values))
    return params


def _ids_by_key(campaign: Campaign, keys: Collection[str]) -> dict[str, int]:
    """``{natural key: id}`` of the campaign's recipients among ``keys``."""
    connection = connections[router.db_for_write(CampaignRecipient)]
    if connection.vendor == "postgresql":
        # One array parameter: an IN list of 2000 placeholders costs more to
        # build and parse than the lookup itself on the unique index.
        meta = CampaignRecipient._meta
        qn = connection.ops.quote_name
        key, pk, campaign_col = (qn(meta.get_field(name).column) for name in ("natural_key", "id", "campaign"))
        sql = (
            f"SELECT {key}, {pk} FROM {qn(meta.db_table)} "  # noqa: S608
            f"WHERE {campaign_col} = %s AND {key} = ANY(%s)"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, [campaign.pk, list(keys)])
            return dict(cursor.fetchall())
    found: dict[str, int] = {}
    ordered = list(keys)
    for start in range(0, len(ordered), 500):  # within SQLite's parameter limit
        chunk = ordered[start : start + 500]
        found.update(
            CampaignRecipient.objects.filter(campaign=campaign, natural_key__in=chunk).values_list("natural_key", "id")
        )
    return found


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
                existing = _ids_by_key(campaign, keys)
                new, counts, trail = _plan(batch, validated, existing, created_ids)
                _insert(campaign, new)
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
        _refresh_statistics()
    report.status = "complete"
    report.finished = timezone.now().isoformat()


def _refresh_statistics() -> None:
    """``ANALYZE`` the recipients table after a large import (PostgreSQL).

    Autovacuum refreshes the planner's statistics only later, and until then
    it plans from the table as it was: qualification, which runs right after,
    then walks every Pending row of the table for each batch of ids instead of
    looking the ids up (measured: 11 s for one batch of 2000 on a freshly
    loaded table, 7 ms once analyzed).  Bounded cost: PostgreSQL samples a
    fixed number of rows whatever the table's size."""
    connection = connections[router.db_for_write(CampaignRecipient)]
    if connection.vendor != "postgresql":
        return  # SQLite's planner reads no statistics unless asked to keep them
    with connection.cursor() as cursor:
        # Only the columns qualification filters on: the sample is the same,
        # the work per column is not.
        qn = connection.ops.quote_name
        meta = CampaignRecipient._meta
        columns = ", ".join(qn(meta.get_field(name).column) for name in ("campaign", "status"))
        cursor.execute(f"ANALYZE {qn(meta.db_table)} ({columns})")


def campaign_save_import_report(*, campaign: Campaign, report: ImportReport) -> None:
    if report.dry_run:
        return
    campaign.import_report = report.as_dict()
    Campaign.objects.filter(pk=campaign.pk).update(import_report=campaign.import_report)
