"""Processing the inbox: read, dedupe and apply printer reports in batches, monotonically.

One batch:

1. **Claim** up to ``batch_size`` pending inbox rows (oldest first) with a
   claim token and a lease: two processing runs never read the same row.
2. **Parse** each row with its printer module, outside any transaction (CPU
   only).  A body that cannot be read is *quarantined* with the reason; the
   others go on.  One Stannp delivery gives one report per mailpiece; an odd
   item gives a *problem* report and costs the others nothing.
3. **Apply**, in one transaction: lock the pieces the reports name (rows
   locked on PostgreSQL; SQLite's IMMEDIATE transaction holds the write
   lock), drop the reports already recorded (the same report in another
   delivery), then walk each piece's reports in the order they *happened*
   (the printer's time, else when we received them) from the piece's current
   status.  A report that moves the piece forward (:func:`can_move`, the one
   rule the Mailpiece FSM derives from) is applied; any other is ignored,
   with the reason recorded; a status we cannot map is recorded and never
   applied.  Reports about a piece we have not recorded yet *wait* and are
   applied, through the same walk, once it exists (a webhook can beat our
   own commit).  Then, in bulk: the report rows, the pieces, one history row
   per applied move, the recipients of delivered pieces Sent → Received, and
   the inbox rows marked processed.

A batch that fails is retried row by row, each in its own transaction, so
one poison row cannot hold the others back; a row that fails
``MAX_ATTEMPTS`` times is quarantined with the error.  Processing never
deletes an inbox row.  The same walk serves ``reprocess_webhooks`` (after a
mapping fix: reports not applied yet are decided again) and
``refresh_mailpieces`` (what a lookup at the printer says).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import timedelta
from typing import Any, NamedTuple

from django.db import connection, transaction
from django.utils import timezone

from campaigns.models import CampaignRecipient
from campaigns.services import recipients_bulk_transition
from common.fsm import Actor
from common.gcpause import gc_paused
from common.sqlitebatch import checkpoints_in_background, larger_page_cache
from mailpieces.models import InboundWebhook, Mailpiece, MailpieceEvent, MailpieceTransition
from mailpieces.status import RANK, TERMINAL, MailpieceStatus, can_move
from printers.base import Printer, PrinterEvent
from printers.registry import get_printer_class

logger = logging.getLogger(__name__)

S = MailpieceStatus
INBOX = InboundWebhook._meta.db_table  # a plain lower-case name: no quoting needed
Outcome = MailpieceEvent.Outcome
State = InboundWebhook.State
# Written into SQL as literals (our own constants), so SQLite can use the
# partial indexes on them: see _claim().
PENDING = State.PENDING.value
WAITING = Outcome.WAITING.value

BATCH_SIZE = 2000
LEASE = timedelta(minutes=5)
MAX_ATTEMPTS = 5
# Reports waiting for their piece looked at per batch.
ADOPT_LIMIT = 5000
# Keep IN lists well under SQLite's bound on parameters.
CHUNK = 900
ACTOR_SOURCE = "webhook"


@dataclass
class ProcessReport:
    """What one or more batches did, for the command, the task and the logs."""

    deliveries: int = 0  # inbox rows read
    quarantined: int = 0  # inbox rows that could not be read
    reports: int = 0  # status reports read from them
    applied: int = 0
    ignored: int = 0
    waiting: int = 0  # about a piece we do not know yet
    adopted: int = 0  # waiting reports decided now that their piece exists
    duplicates: int = 0  # recorded before (another delivery of the same report)
    problems: int = 0  # items that could not be read
    received: int = 0  # recipients moved Sent -> Received
    failed: int = 0  # rows whose processing failed this time (retried later)

    def add(self, other: ProcessReport) -> ProcessReport:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        return self

    def __str__(self) -> str:
        parts = [f"{self.deliveries} deliveries", f"{self.reports} reports", f"{self.applied} applied"]
        for name in ("ignored", "duplicates", "waiting", "adopted", "problems", "quarantined", "received", "failed"):
            if value := getattr(self, name):
                parts.append(f"{value} {name}")
        return ", ".join(parts)


Order = tuple[float, float, int, int]
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def order_key(happened: dt.datetime | None, received: dt.datetime, first: int, second: int) -> Order:
    """A report's place in time: when it happened (else when we received it),
    when we received it, then two tie-breakers (inbox row, item).  Seconds as
    floats, not datetimes: pydantic's parsed datetimes carry a time zone
    object of their own, so each comparison asked both for their offsets, and
    sorting a batch's reports by datetimes took ten times as long
    (bench/README.md, webhooks).  Microseconds stay distinct as floats."""
    return ((happened or received).timestamp(), received.timestamp(), first, second)


@dataclass(slots=True)
class Report:
    """One printer report on its way through a batch: new (``row_id`` None)
    or already recorded and to be decided again (waiting, or re-read)."""

    printer: str
    event: PrinterEvent
    inbox_id: int | None
    order: Order  # when it happened, then when we received it: see order_key()
    row_id: int | None = None
    outcome: str = ""
    note: str = ""
    mailpiece_id: int | None = None


@dataclass(slots=True)
class Piece:
    pk: int
    status: str
    status_at: dt.datetime | None
    last_vendor_status: str
    recipient_id: int
    moves: list[tuple[str, str, Report]] = field(default_factory=list)
    # The printer reported it delivered: applied, or arriving after a later
    # status (Returned, Cancelled) that went past Delivered.
    delivered: bool = False


# ---------------------------------------------------------------------------- entry points
def webhooks_process(
    *,
    batch_size: int = BATCH_SIZE,
    deadline: float | None = None,
    now: dt.datetime | None = None,
    on_batch: Callable[[ProcessReport], None] | None = None,
) -> ProcessReport:
    """Process the inbox until it is empty (or ``deadline``, a ``time.monotonic()``
    value, passes), then decide waiting reports whose pieces now exist.
    ``on_batch`` is called with each batch's report (the command's progress bar).

    On SQLite the WAL is checkpointed from a thread of its own meanwhile, and
    the connection's page cache is larger (common/sqlitebatch.py): checkpoints
    at each commit were a sixth of the run, pages read again a seventh.

    Parsing stays in this thread: a helper thread parsing the next batch while
    this one is applied was slower, not faster (GIL hand-offs between the
    parser and the database calls; docs/decisions.md, "Webhooks").
    """
    total = ProcessReport()
    with checkpoints_in_background(), larger_page_cache():
        while deadline is None or time.monotonic() < deadline:
            report = webhooks_process_batch(batch_size=batch_size, now=now)
            total.add(report)
            if on_batch is not None:
                on_batch(report)
            if report.deliveries + report.failed + report.quarantined < batch_size:
                break
        while deadline is None or time.monotonic() < deadline:
            adopted = webhooks_adopt_waiting(now=now, limit=ADOPT_LIMIT)
            total.add(adopted)
            if adopted.adopted < ADOPT_LIMIT:
                break
    return total


def webhooks_process_batch(*, batch_size: int = BATCH_SIZE, now: dt.datetime | None = None) -> ProcessReport:
    """Claim, parse and apply one batch of pending inbox rows, with the cycle
    collector paused: a batch's objects die by reference counting, and the
    collector's walks over the whole process cost a fifth of the time
    (common/gcpause.py)."""
    with gc_paused():
        batch = _claim_batch(batch_size, now)
        if not batch.rows:
            return ProcessReport()
        return _apply_batch(_parse_all(batch.rows), batch.token, batch.now)


@dataclass
class Batch:
    """Inbox rows claimed under one token."""

    rows: list[Delivery] = field(default_factory=list)
    token: uuid.UUID = field(default_factory=uuid.uuid4)
    now: dt.datetime = field(default_factory=timezone.now)


Parsed = list[tuple["Delivery", list[Report], str]]


def _claim_batch(batch_size: int, now: dt.datetime | None) -> Batch:
    batch = Batch(now=now or timezone.now())
    batch.rows = _claim(batch_size, batch.token, batch.now)
    return batch


def _parse_all(rows: Sequence[Delivery]) -> Parsed:
    return [(row, *_parse(row)) for row in rows]


def _apply_batch(parsed: Parsed, token: uuid.UUID, now: dt.datetime) -> ProcessReport:
    """Apply a parsed batch in one transaction; when that fails, row by row,
    each in its own, so one poison row cannot hold the others back."""
    try:
        with transaction.atomic():
            return _apply_rows(parsed, token, now)
    except Exception:
        logger.exception("webhook batch of %s rows failed; retrying them one by one", len(parsed))
    report = ProcessReport()
    for item in parsed:
        try:
            with transaction.atomic():
                report.add(_apply_rows([item], token, now))
        except Exception as exc:
            logger.exception("webhook inbox row %s failed", item[0].pk)
            _release_failed(item[0].pk, token, exc)
            report.failed += 1
    return report


def webhooks_adopt_waiting(*, now: dt.datetime | None = None, limit: int = ADOPT_LIMIT) -> ProcessReport:
    """Decide reports that waited for a piece which exists now.  The waiting
    reports are read from their partial index (``outcome = 'waiting'`` written
    out, as in _claim()), not by reading every report."""
    now = now or timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(_adoptable_sql(), [limit])
        keys = {(printer, printer_id) for printer, printer_id in cursor.fetchall()}
    if not keys:
        return ProcessReport()
    with transaction.atomic():
        return apply_reports([], now=now, extra_keys=keys)


def webhooks_pending_count() -> int:
    """Deliveries waiting to be processed, counted on their partial index
    (the value written out, as in _claim(): the ORM's parameter made SQLite
    count by reading the whole inbox)."""
    with connection.cursor() as cursor:
        cursor.execute(_pending_count_sql())
        return int(cursor.fetchone()[0])


def _pending_count_sql() -> str:
    return f"SELECT count(*) FROM {INBOX} WHERE state = '{PENDING}'"  # noqa: S608


def _adoptable_sql() -> str:
    """(printer, printer id) of waiting reports whose piece exists; parameter: how many."""
    events, pieces = MailpieceEvent._meta.db_table, Mailpiece._meta.db_table
    return (
        f"SELECT e.printer, e.printer_id FROM {events} e WHERE e.outcome = '{WAITING}' AND EXISTS ("  # noqa: S608
        f"SELECT 1 FROM {pieces} m WHERE m.printer = e.printer AND m.printer_id = e.printer_id) LIMIT %s"
    )


def reports_from_rows(rows: Iterable[InboundWebhook]) -> tuple[list[Report], list[tuple[int, str]]]:
    """Parse stored inbox rows (for ``reprocess_webhooks``): the reports, and
    the rows that cannot be read with the reason."""
    reports: list[Report] = []
    broken: list[tuple[int, str]] = []
    for row in rows:
        got, problem = _parse(row)
        if problem:
            broken.append((row.pk, problem))
        reports.extend(got)
    return reports, broken


# ---------------------------------------------------------------------------- claim and parse
class Delivery(NamedTuple):
    """What processing reads of an inbox row (a model instance carries more).
    A tuple: 2,000 of them a batch, and a frozen dataclass sets each field
    through ``object.__setattr__``."""

    pk: int
    printer: str
    body: bytes
    content_type: str
    received_at: dt.datetime


def _claim(batch_size: int, token: uuid.UUID, now: dt.datetime) -> list[Delivery]:
    """Take up to ``batch_size`` pending rows whose lease (if any) ran out, in
    one statement: the oldest pending rows (PostgreSQL skips rows another run
    has locked), stamped with the token and the lease, read back.

    ``state = 'pending'`` is written out, not a parameter: SQLite uses a
    partial index only when the query names its condition's value, and with
    a parameter it read the whole inbox, processed rows and their bodies,
    for every batch (so a run was quadratic in the inbox's size; bench/README.md,
    webhooks).  The value is our own constant."""
    _pg[0] = connection.vendor == "postgresql"
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_claim_sql(), [_uuid(token), _db_time(now + LEASE), _db_time(now), batch_size])
        rows = cursor.fetchall()
    deliveries = [
        Delivery(pk, printer, bytes(body), content_type, _aware(received_at) or now)
        for pk, printer, body, content_type, received_at in rows
    ]
    return sorted(deliveries, key=lambda d: d.pk)


def _claim_sql() -> str:
    """The claim's statement; parameters: token, lease end, now, batch size."""
    skip_locked = " FOR UPDATE SKIP LOCKED" if connection.vendor == "postgresql" else ""
    return (
        f"UPDATE {INBOX} SET claim_token = %s, lease_until = %s WHERE id IN ("  # noqa: S608
        f"SELECT id FROM {INBOX} WHERE state = '{PENDING}' AND (lease_until IS NULL OR lease_until < %s) "
        f"ORDER BY id LIMIT %s{skip_locked}) "
        "RETURNING id, printer, body, content_type, received_at"
    )


_parsers: dict[str, Printer] = {}


def _parser(kind: str) -> Printer:
    """A printer instance for parsing only: parsing needs no credentials, so
    reports of a printer disabled since are still read."""
    if kind not in _parsers:
        _parsers[kind] = get_printer_class(kind)({})
    return _parsers[kind]


def _parse(row: Delivery | InboundWebhook) -> tuple[list[Report], str]:
    """The row's reports, or the reason it cannot be read."""
    try:
        events = _parser(row.printer).parse_webhook(bytes(row.body), row.content_type or "application/json")
    except Exception as exc:  # ValueError for a malformed body; anything else is our bug, kept the same way
        message = str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
        return [], message[:2000] or type(exc).__name__
    reports = [
        Report(
            printer=row.printer,
            event=event,
            inbox_id=row.pk,
            order=order_key(event.occurred_at, row.received_at, row.pk, index),
        )
        for index, event in enumerate(events)
    ]
    return reports, ""


def _release_failed(row_id: int, token: uuid.UUID, exc: Exception) -> None:
    """Count a failed run on the row and let it be claimed again; quarantine
    it once it has failed ``MAX_ATTEMPTS`` times."""
    error = f"processing failed: {type(exc).__name__}: {exc}"[:2000]
    with transaction.atomic():
        row = InboundWebhook.objects.select_for_update().filter(pk=row_id, claim_token=token).first()
        if row is None:
            return
        row.attempts += 1
        row.error = error
        row.claim_token = None
        row.lease_until = None
        if row.attempts >= MAX_ATTEMPTS:
            row.state = State.QUARANTINED
            row.processed_at = timezone.now()
        row.save(update_fields=["attempts", "error", "claim_token", "lease_until", "state", "processed_at"])


# ---------------------------------------------------------------------------- apply
def _apply_rows(
    parsed: Sequence[tuple[Delivery, list[Report], str]], token: uuid.UUID, now: dt.datetime
) -> ProcessReport:
    """Apply one claimed batch inside the caller's transaction."""
    ids = [row.pk for row, _, _ in parsed]
    _pg[0] = connection.vendor == "postgresql"
    lock = " FOR UPDATE" if _pg[0] else ""
    held = {
        pk
        for (pk,) in _rows_by_id(
            f"SELECT id FROM {INBOX} WHERE claim_token = %s AND state = %s AND id IN ({{ids}}){lock}",  # noqa: S608
            [_uuid(token), State.PENDING.value],
            ids,
        )
    }
    if len(held) < len(ids):
        logger.warning("%s webhook inbox rows were taken over by another run (lease ran out)", len(ids) - len(held))
    report = ProcessReport()
    reports: list[Report] = []
    processed: list[tuple[int, int]] = []
    quarantined: list[tuple[str, int]] = []
    for row, got, problem in parsed:
        if row.pk not in held:
            continue
        if problem:
            quarantined.append((problem, row.pk))
            continue
        reports.extend(got)
        processed.append((len(got), row.pk))
    report.add(apply_reports(reports, now=now))
    report.deliveries = len(processed)
    report.quarantined = len(quarantined)
    stamp = _db_time(now)
    release = "claim_token = NULL, lease_until = NULL"
    _update_rows(
        InboundWebhook,
        ("id", "state", "processed_at", "events_count"),
        [(pk, State.PROCESSED.value, stamp, count) for count, pk in processed],
        fixed=f"error = '', {release}",
    )
    _update_rows(
        InboundWebhook,
        ("id", "state", "processed_at", "error"),
        [(pk, State.QUARANTINED.value, stamp, error) for error, pk in quarantined],
        fixed=release,
    )
    return report


def apply_reports(
    reports: Sequence[Report],
    *,
    now: dt.datetime,
    extra_keys: Iterable[tuple[str, str]] = (),
    redecide: bool = False,
    actor: Actor | None = None,
) -> ProcessReport:
    """Record and apply ``reports`` inside the caller's transaction.

    ``extra_keys`` are (printer, printer id) pairs whose waiting reports are
    to be decided even without a new report.  With ``redecide`` (a re-read
    after a mapping fix) a report recorded before and not applied is
    replaced by its new reading and decided again; applied ones stand.
    """
    _pg[0] = connection.vendor == "postgresql"
    report = ProcessReport(reports=len(reports))
    # One report per key in this batch: the first delivered wins.
    unique: dict[tuple[str, str], Report] = {}
    for r in sorted(reports, key=lambda r: r.order):
        key = (r.printer, r.event.event_id[:200])
        if key in unique:
            report.duplicates += 1
        else:
            unique[key] = r
    statuses = [r for r in unique.values() if not r.event.problem]
    piece_keys = {(r.printer, r.event.printer_id) for r in statuses if r.event.printer_id} | set(extra_keys)
    pieces = _lock_pieces(piece_keys)
    # Recorded before: duplicates, or (redecide) candidates for a new decision.
    recorded = _recorded(unique.keys())
    fresh: list[Report] = []
    for key, r in unique.items():
        old = recorded.get(key)
        if old is None:
            fresh.append(r)
        elif redecide and old[1] != Outcome.APPLIED:
            r.row_id = old[0]
            fresh.append(r)
        else:
            report.duplicates += 1
    waiting = _waiting_reports(pieces, exclude={r.row_id for r in fresh if r.row_id})
    report.adopted = len(waiting)
    # In the order they happened: ``fresh`` already is (``unique`` was filled
    # in that order), so one sort merges the waiting ones in, and each piece's
    # list below is in order without a sort of its own.
    decide = [*fresh, *waiting]
    if waiting:
        decide.sort(key=lambda r: r.order)
    by_piece: dict[tuple[str, str], list[Report]] = defaultdict(list)
    for r in decide:
        if r.event.problem:
            continue
        by_piece[(r.printer, r.event.printer_id)].append(r)
    for r in fresh:
        if r.event.problem:
            r.outcome, r.note = Outcome.PROBLEM, r.event.problem[:300]
    for key, items in by_piece.items():
        piece = pieces.get(key)
        if piece is None:
            for r in items:
                r.outcome, r.note = Outcome.WAITING, "no mailpiece with this printer id yet"
            continue
        _walk(piece, items)
    for r in [*fresh, *waiting]:
        report.applied += r.outcome == Outcome.APPLIED
        report.ignored += r.outcome == Outcome.IGNORED
        report.problems += r.outcome == Outcome.PROBLEM
        report.waiting += r.outcome == Outcome.WAITING and r.row_id is None
    _write_reports([r for r in fresh if r.row_id is None], now)
    _update_reports([r for r in [*fresh, *waiting] if r.row_id is not None], now)
    moved = [p for p in pieces.values() if p.moves]
    _write_pieces(moved, now, actor)
    # The recipient got the card whatever order the printer's reports came in:
    # Delivered then Returned and Returned then (a late) Delivered both say so.
    delivered = {p.recipient_id for p in pieces.values() if p.delivered}
    if delivered:
        report.received = len(
            recipients_bulk_transition(
                queryset=CampaignRecipient.objects.filter(pk__in=delivered),
                method="mark_received",
                actor=actor or Actor(ACTOR_SOURCE),
                reason="the printer reports the postcard delivered",
            )
        )
    return report


def _walk(piece: Piece, items: list[Report]) -> None:
    """Decide each report (``items`` in the order they happened) from the piece's status."""
    for r in items:
        r.mailpiece_id = piece.pk
        target = r.event.status
        if target == S.UNKNOWN:
            r.outcome = Outcome.IGNORED
            r.note = f"the printer's status {r.event.vendor_status[:60]!r} is not one we know: recorded, not applied"
        elif can_move(piece.status, target):
            piece.delivered |= target == S.DELIVERED
            r.outcome = Outcome.APPLIED
            piece.moves.append((piece.status, target, r))
            piece.status = target
            at = r.event.occurred_at
            if at is not None and (piece.status_at is None or at > piece.status_at):
                piece.status_at = at
            if r.event.vendor_status:
                piece.last_vendor_status = r.event.vendor_status[:100]
        else:
            piece.delivered |= target == S.DELIVERED and piece.status in PAST_DELIVERED
            r.outcome = Outcome.IGNORED
            r.note = _why_not(piece.status, target)


# Statuses a piece reaches only after Delivered (the spec's late edges): a
# Delivered report that arrives after them still says the card was delivered.
PAST_DELIVERED = frozenset(s for s, rank in RANK.items() if rank > RANK[S.DELIVERED])


LABELS: dict[str, str] = dict(MailpieceStatus.choices)


def _why_not(current: str, target: str) -> str:
    label = LABELS.get(current, current)
    if current == target:
        return f"the piece is already {label}"
    if current in TERMINAL:
        return f"the piece is {label}, which is final"
    if target == S.ERROR:
        return f"an error report after {label} does not undo it"
    return f"{LABELS.get(target, target)} is behind {label}: a piece never moves back"


def _select_in(
    model: Any,
    columns: Sequence[str],
    printer: str,
    key_column: str,
    keys: Sequence[str],
    *,
    where: str = "",
    lock: bool = False,
) -> list[tuple[Any, ...]]:
    """``SELECT columns FROM model WHERE printer = … AND key_column IN keys [AND where]``
    in chunks, as plain SQL: the ORM's building of these IN lists cost more than
    running them (bench/README.md, webhooks).  ``lock``: ``FOR UPDATE`` in id
    order on PostgreSQL (one order for every run: no deadlocks)."""
    table = connection.ops.quote_name(model._meta.db_table)
    quote = connection.ops.quote_name
    select = ", ".join(quote(c) for c in columns)
    extra = f" AND {where}" if where else ""
    tail = " ORDER BY id FOR UPDATE" if lock and connection.vendor == "postgresql" else ""
    out: list[tuple[Any, ...]] = []
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":  # one array parameter: a short statement, whatever the count
            cursor.execute(
                f"SELECT {select} FROM {table} WHERE printer = %s AND {quote(key_column)} = ANY(%s){extra}{tail}",  # noqa: S608
                [printer, list(keys)],
            )
            return list(cursor.fetchall())
        for start in range(0, len(keys), CHUNK):
            chunk = list(keys[start : start + CHUNK])
            marks = ", ".join(["%s"] * len(chunk))
            cursor.execute(
                f"SELECT {select} FROM {table} WHERE printer = %s AND {quote(key_column)} IN ({marks}){extra}{tail}",  # noqa: S608
                [printer, *chunk],
            )
            out.extend(cursor.fetchall())
    return out


def _aware(value: Any) -> dt.datetime | None:
    """A datetime column read with a plain cursor (SQLite gives it naive, in UTC)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _by_printer(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = defaultdict(list)
    for printer, key in pairs:
        grouped[printer].append(key)
    return grouped


def _lock_pieces(keys: set[tuple[str, str]]) -> dict[tuple[str, str], Piece]:
    """The pieces named by ``keys``, locked until the transaction ends."""
    found: dict[tuple[str, str], Piece] = {}
    columns = ("id", "printer_id", "status", "status_at", "last_vendor_status", "recipient_id")
    for printer, printer_ids in _by_printer(keys).items():
        for pk, printer_id, status, status_at, vendor_status, recipient_id in _select_in(
            Mailpiece, columns, printer, "printer_id", printer_ids, lock=True
        ):
            found[(printer, printer_id)] = Piece(pk, status, _aware(status_at), vendor_status, recipient_id)
    return found


def _recorded(keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], tuple[int, str]]:
    """Reports recorded before, by (printer, event key): (row id, outcome)."""
    out: dict[tuple[str, str], tuple[int, str]] = {}
    for printer, event_keys in _by_printer(keys).items():
        for pk, key, outcome in _select_in(
            MailpieceEvent, ("id", "event_key", "outcome"), printer, "event_key", event_keys
        ):
            out[(printer, key)] = (pk, outcome)
    return out


def _waiting_reports(pieces: dict[tuple[str, str], Piece], *, exclude: set[int]) -> list[Report]:
    """Recorded reports waiting for one of ``pieces``, as reports to decide."""
    columns = (
        "id",
        "printer_id",
        "event_key",
        "vendor_status",
        "status",
        "occurred_at",
        "reference",
        "created",
        "inbox_id",
    )
    out: list[Report] = []
    for printer, printer_ids in _by_printer(pieces).items():
        rows = _select_in(MailpieceEvent, columns, printer, "printer_id", printer_ids, where=f"outcome = '{WAITING}'")
        for pk, printer_id, key, vendor_status, status, occurred_at, reference, created, inbox_id in rows:
            if pk in exclude:
                continue
            occurred_at, created = _aware(occurred_at), _aware(created) or EPOCH  # created is never empty
            event = PrinterEvent(
                printer_id=printer_id,
                vendor_status=vendor_status,
                status=S(status),
                occurred_at=occurred_at,
                event_id=key,
                reference=reference,
            )
            out.append(Report(printer, event, inbox_id, order_key(occurred_at, created, inbox_id or 0, pk), row_id=pk))
    return out


def _insert_rows(model: Any, columns: Sequence[str], rows: Sequence[Sequence[Any]], *, conflict: str = "") -> None:
    """``INSERT`` of plain tuples in one call: PostgreSQL ``unnest``s one array
    per column, SQLite runs one short statement per row (``executemany``).
    ``bulk_create`` built a model instance per row and prepared each value
    through the insert compiler, and a statement per row cost PostgreSQL a
    round trip each (bench/README.md, webhooks).  Values are already what the
    column stores (datetimes adapted by the caller); JSON columns take
    ``json.dumps`` text."""
    if not rows:
        return
    quote = connection.ops.quote_name
    on_conflict = f" ON CONFLICT ({conflict}) DO NOTHING" if conflict else ""
    # Only our own quoted identifiers and placeholders are interpolated; values are parameters.
    head = f"INSERT INTO {quote(model._meta.db_table)} ({', '.join(quote(c) for c in columns)}) "
    with connection.cursor() as cursor:
        if _pg[0]:
            # One array per column, unnested: a short, constant statement
            # (psycopg re-parses a long one's placeholders on every call).
            sql = f"{head}SELECT * FROM unnest({_arrays(model, columns)}){on_conflict}"  # noqa: S608
            cursor.execute(sql, _columns(rows))
            return
        # One short statement run per row by sqlite3 itself: Django converts
        # the placeholders once, where a 500-row VALUES list cost a regex pass
        # over thousands of them and SQLite a parse, every statement.
        one = "(" + ", ".join(["%s"] * len(columns)) + ")"
        cursor.executemany(f"{head}VALUES {one}{on_conflict}", rows)


def _arrays(model: Any, columns: Sequence[str]) -> str:
    """``%s::<type>[]`` per column (PostgreSQL), for ``unnest``."""
    fields = {f.column: f for f in model._meta.concrete_fields}
    types = [
        "jsonb" if fields[c].get_internal_type() == "JSONField" else fields[c].db_type(connection) for c in columns
    ]
    return ", ".join(f"%s::{t}[]" for t in types)


def _columns(rows: Sequence[Sequence[Any]]) -> list[list[Any]]:
    return [list(column) for column in zip(*rows, strict=True)]


def _update_rows(
    model: Any, columns: Sequence[str], rows: Sequence[Sequence[Any]], *, fixed: str = "", match: str = ""
) -> None:
    """Update rows by id in one call: PostgreSQL ``UPDATE t SET c = v.c … FROM
    unnest(…) v WHERE t.id = v.id``, SQLite ``UPDATE … WHERE id = ?`` run per
    row (``executemany``).  Each row is ``(id, *values of columns[1:])``;
    ``fixed`` adds constant assignments (``"claim_token = NULL"``); ``match``
    names a column that must still hold the row's last value (a compare-and-swap).
    """
    if not rows:
        return
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    key, values = quote(columns[0]), columns[1:]
    with connection.cursor() as cursor:
        if _pg[0]:
            names = [*columns, *([f"old_{match}"] if match else [])]
            sets = [f"{quote(c)} = v.{quote(c)}" for c in values] + ([fixed] if fixed else [])
            cas = f" AND {table}.{quote(match)} = v.{quote('old_' + match)}" if match else ""
            arrays = _arrays(model, [*columns, *([match] if match else [])])
            cursor.execute(
                f"UPDATE {table} SET {', '.join(sets)} "  # noqa: S608
                f"FROM unnest({arrays}) AS v ({', '.join(quote(n) for n in names)}) "
                f"WHERE {table}.{key} = v.{key}{cas}",
                _columns(rows),
            )
            return
        # One short statement run per row by sqlite3 (as _insert_rows).
        sets = [f"{quote(c)} = %s" for c in values] + ([fixed] if fixed else [])
        cas = f" AND {quote(match)} = %s" if match else ""
        width = len(columns)
        cursor.executemany(
            f"UPDATE {table} SET {', '.join(sets)} WHERE {key} = %s{cas}",  # noqa: S608
            [(*row[1:width], row[0], *row[width:]) for row in rows],
        )


def _db_time(value: dt.datetime | None) -> Any:
    """A datetime as the column stores it: PostgreSQL takes it as it is; SQLite
    as Django writes it (naive UTC text), so comparisons in SQL stay right.
    By hand, with the vendor read once per batch (``_pg``): Django's adapter
    and the connection proxy, per value, showed in profiles."""
    if value is None or _pg[0]:
        return value
    if value.tzinfo is None:
        return str(value)
    if value.tzinfo is not dt.UTC:
        value = value.astimezone(dt.UTC)
    # Django's text is str() of the naive UTC time: the ISO form less "+00:00",
    # without building the naive copy first.
    return value.isoformat(" ")[:-6]


_pg = [False]  # whether the connection is PostgreSQL: set by each batch before it writes


def _uuid(value: uuid.UUID) -> Any:
    """A UUID as the column stores it (PostgreSQL: uuid; SQLite: Django's 32 hex digits)."""
    return value if _pg[0] else value.hex


def _rows_by_id(sql: str, params: Sequence[Any], ids: Sequence[int]) -> list[tuple[Any, ...]]:
    """Run ``sql`` (ending in ``id IN ({ids})``) over ``ids`` in chunks, as plain
    SQL: building these IN lists through the ORM cost more than running them."""
    out: list[tuple[Any, ...]] = []
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":  # one array parameter: a short statement, whatever the count
            cursor.execute(sql.replace("IN ({ids})", "= ANY(%s)"), [*params, list(ids)])
            return list(cursor.fetchall()) if cursor.description is not None else []
        for start in range(0, len(ids), CHUNK):
            chunk = list(ids[start : start + CHUNK])
            cursor.execute(sql.format(ids=", ".join(["%s"] * len(chunk))), [*params, *chunk])
            if cursor.description is not None:
                out.extend(cursor.fetchall())
    return out


def _write_reports(reports: list[Report], now: dt.datetime) -> None:
    """New report rows.  A conflict can only be a waiting or problem report
    another run recorded meanwhile (applied ones are decided under the
    piece's lock), so it is skipped, not an error."""
    stamp = _db_time(now)
    _insert_rows(
        MailpieceEvent,
        (
            "inbox_id",
            "printer",
            "printer_id",
            "event_key",
            "mailpiece_id",
            "vendor_status",
            "status",
            "occurred_at",
            "outcome",
            "note",
            "reference",
            "created",
            "decided_at",
        ),
        [
            (
                r.inbox_id,
                r.printer,
                r.event.printer_id[:100],
                r.event.event_id[:200],
                r.mailpiece_id,
                r.event.vendor_status[:100],
                str(r.event.status),
                _db_time(r.event.occurred_at),
                str(r.outcome),
                r.note[:300],
                r.event.reference[:100],
                stamp,
                None if r.outcome == Outcome.WAITING else stamp,
            )
            for r in reports
        ],
        conflict="printer, event_key",
    )


def _update_reports(reports: list[Report], now: dt.datetime) -> None:
    """Reports recorded before and decided again (waiting, or re-read)."""
    if not reports:
        return
    stamp = _db_time(now)
    _update_rows(
        MailpieceEvent,
        ("id", "outcome", "note", "mailpiece_id", "status", "vendor_status", "occurred_at", "decided_at"),
        [
            (
                r.row_id,
                str(r.outcome),
                r.note[:300],
                r.mailpiece_id,
                str(r.event.status),
                r.event.vendor_status[:100],
                _db_time(r.event.occurred_at),
                None if r.outcome == Outcome.WAITING else stamp,
            )
            for r in reports
        ],
    )


def _write_pieces(pieces: list[Piece], now: dt.datetime, actor: Actor | None) -> None:
    """The pieces' new status (a compare-and-swap on the status read under the
    lock) and one history row per move."""
    if not pieces:
        return
    _update_rows(
        Mailpiece,
        ("id", "status", "status_at", "last_vendor_status", "updated"),
        [(p.pk, p.status, _db_time(p.status_at), p.last_vendor_status, _db_time(now), p.moves[0][0]) for p in pieces],
        match="status",
    )
    user_id = actor.user.pk if actor and actor.user is not None else None
    stamp = _db_time(now)
    _insert_rows(
        MailpieceTransition,
        ("mailpiece_id", "from_status", "to_status", "source", "acting_user_id", "reason", "payload", "created"),
        [
            (
                p.pk,
                str(before),
                str(after),
                (actor.source if actor else f"{ACTOR_SOURCE}:{r.printer}")[:64],
                user_id,
                f"printer reported {r.event.vendor_status or after}"[:500],
                json.dumps({"event": r.event.event_id[:200], "inbox": r.inbox_id}),
                stamp,
            )
            for p in pieces
            for before, after, r in p.moves
        ],
    )
