"""Webhook processing: the inbox read in batches, applied monotonically, nothing lost.

Rows are put in the inbox the way the view stores them (raw bytes); the
endpoints' own tests sign and post.  Each test names the behaviour it holds.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from pathlib import Path
from typing import cast

import pytest
from django.db import connection, connections
from django.utils import timezone

from campaigns.models import CampaignRecipient
from campaigns.tests.factories import CampaignRecipientFactory
from mailpieces.models import InboundWebhook, Mailpiece, MailpieceEvent
from mailpieces.status import MailpieceStatus as S
from mailpieces.tests.factories import MailpieceFactory
from mailpieces.webhooks import processing
from mailpieces.webhooks.processing import webhooks_process
from printers.registry import get_printer_class

pytestmark = pytest.mark.django_db

Status = CampaignRecipient.Status
Outcome = MailpieceEvent.Outcome
T0 = dt.datetime(2026, 3, 4, 12, 0, tzinfo=dt.UTC)
FIXTURES = Path(__file__).resolve().parents[2] / "printers"


def sandbox_body(event_id: str, piece_id: str, status: str, minutes: int = 0) -> bytes:
    at = (T0 + dt.timedelta(minutes=minutes)).isoformat()
    return json.dumps(
        {
            "id": event_id,
            "type": "piece.status_changed",
            "created_at": at,
            "data": {"id": piece_id, "reference": "", "status": status, "occurred_at": at},
        }
    ).encode()


def store(printer: str, body: bytes, event_id: str | None = None, content_type: str = "application/json") -> int:
    """An inbox row as the view stores it after verification."""
    row = InboundWebhook.objects.create(
        printer=printer,
        event_id=event_id or f"x-{InboundWebhook.objects.count()}",
        body=body,
        content_type=content_type,
    )
    return row.pk


def sent_piece(printer: str = "sandbox", printer_id: str = "sbx_1") -> Mailpiece:
    recipient = CampaignRecipientFactory(status=Status.SENT)
    return cast("Mailpiece", MailpieceFactory(recipient=recipient, printer=printer, printer_id=printer_id))


def statuses_of(piece: Mailpiece) -> list[tuple[str, str]]:
    return list(piece.transitions.order_by("id").values_list("from_status", "to_status"))


# ---------------------------------------------------------------------------- one event per vendor fixture
def vendor_fixtures() -> list[tuple[str, str]]:
    out = []
    for vendor in ("lob", "stannp", "intelliprint", "taylor", "sandbox"):
        for path in sorted((FIXTURES / vendor / "fixtures").glob("*.json")):
            out.append((vendor, path.name))
    return out


@pytest.mark.parametrize(("vendor", "name"), vendor_fixtures())
def test_each_vendor_fixture_is_applied_or_accounted_for(vendor, name):
    """Every stored fixture ends processed or quarantined; every mapped status
    report in it moves its piece to the spec's status (pieces created first)."""
    body = (FIXTURES / vendor / "fixtures" / name).read_bytes()
    try:
        events = get_printer_class(vendor)({}).parse_webhook(body, "application/json")
    except ValueError:
        events = None
    pieces = {}
    for event in events or []:
        if event.printer_id and not event.problem and event.printer_id not in pieces:
            pieces[event.printer_id] = sent_piece(vendor, event.printer_id)
    row = store(vendor, body)
    webhooks_process()
    inbox = InboundWebhook.objects.get(pk=row)
    if events is None:
        assert inbox.state == InboundWebhook.State.QUARANTINED
        assert inbox.error
        return
    assert inbox.state == InboundWebhook.State.PROCESSED
    assert inbox.events_count == len(events)
    for event in events:
        if event.problem or not event.printer_id:
            continue
        piece = Mailpiece.objects.get(printer=vendor, printer_id=event.printer_id)
        if event.status not in (S.UNKNOWN, S.SUBMITTED):
            assert piece.status == event.status, (event.vendor_status, piece.status)
            if event.status == S.DELIVERED:
                assert piece.recipient.status == Status.RECEIVED
        else:
            assert piece.status == S.SUBMITTED


# ---------------------------------------------------------------------------- monotonic
def test_a_report_moves_the_piece_records_history_and_receives_the_recipient():
    piece = sent_piece()
    store("sandbox", sandbox_body("e1", "sbx_1", "InTransit", 1))
    store("sandbox", sandbox_body("e2", "sbx_1", "Delivered", 2))
    report = webhooks_process()
    piece.refresh_from_db()
    assert piece.status == S.DELIVERED
    assert piece.status_at == T0 + dt.timedelta(minutes=2)
    assert statuses_of(piece) == [("Submitted", "InTransit"), ("InTransit", "Delivered")]
    assert piece.recipient.status == Status.RECEIVED
    assert piece.recipient.transitions.filter(from_status="Sent", to_status="Received").count() == 1
    assert (report.applied, report.received) == (2, 1)
    assert not InboundWebhook.objects.filter(state="pending").exists()


def test_shuffled_order_delivered_before_in_transit_keeps_delivered():
    piece = sent_piece()
    store("sandbox", sandbox_body("late", "sbx_1", "Delivered", 5))
    webhooks_process()
    store("sandbox", sandbox_body("early", "sbx_1", "InTransit", 1))
    webhooks_process()
    piece.refresh_from_db()
    assert piece.status == S.DELIVERED
    stale = MailpieceEvent.objects.get(event_key="early")
    assert stale.outcome == Outcome.IGNORED
    assert "never moves back" in stale.note
    assert statuses_of(piece) == [("Submitted", "Delivered")]


def test_within_one_batch_reports_are_walked_in_the_order_they_happened():
    """Delivered (t5) then Error (t1) arrive in that order in one batch: the
    error happened first, so it is applied, and Delivered after it is not
    (Error is final).  Arrival order would have kept Delivered."""
    piece = sent_piece()
    store("sandbox", sandbox_body("d", "sbx_1", "Delivered", 5))
    store("sandbox", sandbox_body("x", "sbx_1", "Error", 1))
    webhooks_process()
    piece.refresh_from_db()
    assert piece.status == S.ERROR
    assert MailpieceEvent.objects.get(event_key="d").outcome == Outcome.IGNORED


def test_returned_after_delivered_is_a_forward_move_and_keeps_the_recipient_received():
    piece = sent_piece()
    store("sandbox", sandbox_body("d", "sbx_1", "Delivered", 1))
    store("sandbox", sandbox_body("r", "sbx_1", "Returned", 2))
    webhooks_process()
    piece.refresh_from_db()
    assert piece.status == S.RETURNED
    assert piece.recipient.status == Status.RECEIVED


def test_a_late_delivered_report_after_returned_still_receives_the_recipient():
    """Returned is read first, Delivered (which happened before it) later: the
    piece stays Returned, and the recipient is Received as in the other order."""
    piece = sent_piece()
    store("sandbox", sandbox_body("r", "sbx_1", "Returned", 5))
    webhooks_process()
    piece.refresh_from_db()
    assert piece.recipient.status == Status.SENT
    store("sandbox", sandbox_body("d", "sbx_1", "Delivered", 2))
    report = webhooks_process()
    piece.refresh_from_db()
    assert piece.status == S.RETURNED
    assert piece.recipient.status == Status.RECEIVED
    assert report.received == 1
    assert MailpieceEvent.objects.get(event_key="d").outcome == Outcome.IGNORED


def test_an_error_piece_is_not_received_by_a_late_delivered_report():
    piece = sent_piece()
    store("sandbox", sandbox_body("x", "sbx_1", "Error", 5))
    webhooks_process()
    store("sandbox", sandbox_body("d", "sbx_1", "Delivered", 6))
    webhooks_process()
    piece.refresh_from_db()
    assert (piece.status, piece.recipient.status) == (S.ERROR, Status.SENT)


def test_an_unknown_status_is_recorded_and_never_overwrites_a_known_one():
    piece = sent_piece()
    store("sandbox", sandbox_body("t", "sbx_1", "InTransit", 1))
    store("sandbox", sandbox_body("u", "sbx_1", "Teleported", 2))
    webhooks_process()
    piece.refresh_from_db()
    assert piece.status == S.IN_TRANSIT
    unknown = MailpieceEvent.objects.get(event_key="u")
    assert (unknown.outcome, unknown.status, unknown.vendor_status) == (Outcome.IGNORED, S.UNKNOWN, "Teleported")
    assert "not one we know" in unknown.note


# ---------------------------------------------------------------------------- duplicates
def test_the_same_report_in_three_deliveries_changes_the_piece_once():
    piece = sent_piece()
    body = sandbox_body("same", "sbx_1", "InTransit", 1)
    for n in range(3):
        store("sandbox", body, event_id=f"delivery-{n}")
        webhooks_process()
    piece.refresh_from_db()
    assert statuses_of(piece) == [("Submitted", "InTransit")]
    assert MailpieceEvent.objects.filter(event_key="same").count() == 1
    assert InboundWebhook.objects.filter(state="processed").count() == 3


def test_duplicates_inside_one_batch_are_recorded_once():
    piece = sent_piece()
    body = sandbox_body("same", "sbx_1", "Delivered", 1)
    for n in range(3):
        store("sandbox", body, event_id=f"delivery-{n}")
    report = webhooks_process()
    piece.refresh_from_db()
    assert statuses_of(piece) == [("Submitted", "Delivered")]
    assert report.duplicates == 2
    assert piece.recipient.transitions.filter(to_status="Received").count() == 1


def stannp_body(items: list[dict], created: str = "2026-03-04 12:00:00") -> bytes:
    return json.dumps(
        {"webhook_id": 9, "event": "mailpiece_status", "created": created, "retries": 0, "mailpieces": items}
    ).encode()


def test_a_replayed_stannp_delivery_changes_nothing():
    piece = sent_piece("stannp", "501")
    body = stannp_body([{"id": "501", "status": "delivered"}])
    store("stannp", body, event_id="sha256:a")
    webhooks_process()
    # Stannp signs no timestamp: a replay with the retry counter bumped is a new delivery, the same report.
    replay = body.replace(b'"retries": 0', b'"retries": 1')
    store("stannp", replay, event_id="sha256:b")
    webhooks_process()
    piece.refresh_from_db()
    assert statuses_of(piece) == [("Submitted", "Delivered")]
    assert MailpieceEvent.objects.filter(printer="stannp").count() == 1


def test_one_bad_stannp_item_costs_the_good_ones_nothing():
    good = sent_piece("stannp", "601")
    store("stannp", stannp_body([{"id": "601", "status": "delivered"}, {"status": "delivered"}, "junk"]))
    report = webhooks_process()
    good.refresh_from_db()
    assert good.status == S.DELIVERED
    assert report.problems == 2
    problems = MailpieceEvent.objects.filter(outcome=Outcome.PROBLEM)
    assert sorted(problems.values_list("note", flat=True)) == ["the item has no id", "the item is not an object"]


# ---------------------------------------------------------------------------- waiting for the piece
def test_a_report_before_its_piece_waits_and_is_applied_when_the_piece_appears():
    store("sandbox", sandbox_body("early", "sbx_9", "InTransit", 1))
    report = webhooks_process()
    assert report.waiting == 1
    waiting = MailpieceEvent.objects.get(event_key="early")
    assert (waiting.outcome, waiting.mailpiece_id) == (Outcome.WAITING, None)
    piece = sent_piece(printer_id="sbx_9")  # our own commit lands after the webhook
    report = webhooks_process()
    piece.refresh_from_db()
    waiting.refresh_from_db()
    assert piece.status == S.IN_TRANSIT
    assert (waiting.outcome, waiting.mailpiece_id, report.adopted) == (Outcome.APPLIED, piece.pk, 1)
    webhooks_process()  # and only once
    assert statuses_of(piece) == [("Submitted", "InTransit")]


def test_a_waiting_report_is_walked_with_newer_ones_in_time_order():
    store("sandbox", sandbox_body("delivered", "sbx_9", "Delivered", 5))
    webhooks_process()
    piece = sent_piece(printer_id="sbx_9")
    store("sandbox", sandbox_body("transit", "sbx_9", "InTransit", 1))
    webhooks_process()
    piece.refresh_from_db()
    assert piece.status == S.DELIVERED
    assert statuses_of(piece) == [("Submitted", "InTransit"), ("InTransit", "Delivered")]


def test_a_waiting_report_older_than_a_new_one_is_applied_first():
    """The waiting InTransit (t1) and the new Delivered (t5) are walked in time
    order, so both apply; in arrival order InTransit would come too late."""
    store("sandbox", sandbox_body("transit", "sbx_9", "InTransit", 1))
    webhooks_process()
    piece = sent_piece(printer_id="sbx_9")
    store("sandbox", sandbox_body("delivered", "sbx_9", "Delivered", 5))
    webhooks_process()
    piece.refresh_from_db()
    assert statuses_of(piece) == [("Submitted", "InTransit"), ("InTransit", "Delivered")]
    assert set(MailpieceEvent.objects.values_list("outcome", flat=True)) == {Outcome.APPLIED}


# ---------------------------------------------------------------------------- bad input and crashes
def test_a_malformed_authentic_body_is_quarantined_and_the_rest_go_on():
    piece = sent_piece()
    bad = store("sandbox", b'{"id": "evt_bad", "type": "piece.status_changed"}')
    good = store("sandbox", sandbox_body("ok", "sbx_1", "InTransit", 1))
    report = webhooks_process()
    bad_row = InboundWebhook.objects.get(pk=bad)
    assert bad_row.state == InboundWebhook.State.QUARANTINED
    assert "sandbox webhook body is not a sandbox event" in bad_row.error
    assert InboundWebhook.objects.get(pk=good).state == InboundWebhook.State.PROCESSED
    piece.refresh_from_db()
    assert piece.status == S.IN_TRANSIT
    assert report.quarantined == 1


def test_a_crash_mid_batch_loses_nothing_and_the_retry_succeeds(monkeypatch):
    piece = sent_piece()
    store("sandbox", sandbox_body("a", "sbx_1", "InTransit", 1))
    store("sandbox", sandbox_body("b", "sbx_1", "Delivered", 2))
    real = processing._write_pieces
    calls = {"n": 0}

    def crash(*args, **kwargs):
        calls["n"] += 1
        raise RuntimeError("the database went away")

    monkeypatch.setattr(processing, "_write_pieces", crash)
    report = webhooks_process()
    assert report.failed == 2
    piece.refresh_from_db()
    assert piece.status == S.SUBMITTED  # nothing half-applied
    assert not MailpieceEvent.objects.exists()
    rows = InboundWebhook.objects.all()
    assert {r.state for r in rows} == {"pending"}
    assert {r.attempts for r in rows} == {1}
    assert all("the database went away" in r.error for r in rows)
    monkeypatch.setattr(processing, "_write_pieces", real)
    webhooks_process()
    piece.refresh_from_db()
    assert piece.status == S.DELIVERED
    assert set(InboundWebhook.objects.values_list("state", flat=True)) == {"processed"}


def test_a_row_that_keeps_failing_is_quarantined_after_the_attempts_and_others_pass(monkeypatch):
    sent_piece()
    poison = store("sandbox", sandbox_body("p", "sbx_1", "InTransit", 1))
    store("sandbox", sandbox_body("fine", "sbx_2", "InTransit", 1))
    real = processing.apply_reports

    def fails_on_poison(reports, **kwargs):
        if any(r.inbox_id == poison for r in reports):
            raise ValueError("a bug in our code")
        return real(reports, **kwargs)

    monkeypatch.setattr(processing, "apply_reports", fails_on_poison)
    for _ in range(processing.MAX_ATTEMPTS):
        webhooks_process()
    row = InboundWebhook.objects.get(pk=poison)
    assert (row.state, row.attempts) == ("quarantined", processing.MAX_ATTEMPTS)
    assert "a bug in our code" in row.error
    assert InboundWebhook.objects.exclude(pk=poison).get().state == "processed"


def test_processing_never_deletes_an_inbox_row():
    sent_piece()
    for n in range(5):
        store("sandbox", sandbox_body(f"e{n}", "sbx_1", "InTransit", n))
    store("sandbox", b"not json")
    webhooks_process()
    assert InboundWebhook.objects.count() == 6


def test_a_claimed_row_is_not_read_by_a_second_run_until_its_lease_runs_out():
    sent_piece()
    store("sandbox", sandbox_body("a", "sbx_1", "InTransit", 1))
    now = timezone.now()
    token = processing.uuid.uuid4()
    claimed = processing._claim(10, token, now)
    assert len(claimed) == 1
    assert processing._claim(10, processing.uuid.uuid4(), now) == []
    later = now + processing.LEASE + dt.timedelta(seconds=1)
    again = processing._claim(10, processing.uuid.uuid4(), later)
    assert [r.pk for r in again] == [claimed[0].pk]
    # The first run, back from a long pause, writes nothing for the row it lost.
    parsed = [(row, *processing._parse(row)) for row in claimed]
    report = processing._apply_rows(parsed, token, now)
    assert report.deliveries == 0
    assert not MailpieceEvent.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_runs_apply_each_report_once():
    pieces = [sent_piece(printer_id=f"sbx_{n}") for n in range(40)]
    for piece in pieces:
        for minutes, status in ((1, "InTransit"), (2, "Delivered")):
            body = sandbox_body(f"{piece.printer_id}:{status}", piece.printer_id, status, minutes)
            store("sandbox", body, event_id=f"{piece.printer_id}:{status}:a")
            store("sandbox", body, event_id=f"{piece.printer_id}:{status}:b")  # the same report, twice
    errors = []
    barrier = threading.Barrier(2)

    def run():
        try:
            barrier.wait()
            while processing.webhooks_process_batch(batch_size=7).deliveries:
                pass
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert not InboundWebhook.objects.exclude(state="processed").exists()
    assert MailpieceEvent.objects.count() == 80
    for piece in pieces:
        piece.refresh_from_db()
        assert piece.status == S.DELIVERED
        # Delivered may be read in an earlier batch than InTransit: then InTransit is ignored.
        assert statuses_of(piece) in (
            [("Submitted", "InTransit"), ("InTransit", "Delivered")],
            [("Submitted", "Delivered")],
        )
        applied = piece.events.filter(outcome=Outcome.APPLIED).count()
        assert piece.transitions.count() == applied
    assert CampaignRecipient.objects.filter(status=Status.RECEIVED).count() == 40


def test_the_schedule_runs_processing_every_15_seconds():
    from croniter import croniter
    from django_q.models import Schedule

    schedule = Schedule.objects.get(name="process webhooks")
    assert schedule.func == "mailpieces.tasks.process_webhooks_task"
    times = croniter(schedule.cron, T0).all_next(dt.datetime)
    first, second = next(times), next(times)
    assert (second - first).total_seconds() == 15


def test_the_task_drains_the_inbox():
    from mailpieces.tasks import process_webhooks_task

    piece = sent_piece()
    store("sandbox", sandbox_body("a", "sbx_1", "Delivered", 1))
    assert process_webhooks_task() == 1
    piece.refresh_from_db()
    assert piece.status == S.DELIVERED
    assert connection.vendor in ("sqlite", "postgresql")


# ---------------------------------------------------------------------------- the cycle collector
def test_a_batch_runs_with_the_cycle_collector_paused_and_turns_it_back_on(monkeypatch):
    """The collector's walks over the whole process were a fifth of the apply
    benchmark (bench/README.md): a batch pauses it, and never leaves it off."""
    import gc

    seen: list[bool] = []
    parse_all = processing._parse_all

    def spy(rows):
        seen.append(gc.isenabled())
        return parse_all(rows)

    monkeypatch.setattr(processing, "_parse_all", spy)
    sent_piece()
    store("sandbox", sandbox_body("e1", "sbx_1", "InTransit", 1))
    assert gc.isenabled()
    webhooks_process()
    assert seen == [False]
    assert gc.isenabled()


# ---------------------------------------------------------------------------- checkpoints and order
def test_a_run_checkpoints_sqlite_from_its_own_thread_with_a_larger_cache_and_puts_both_back(monkeypatch):
    """Checkpoints at each commit were a sixth of the apply benchmark and pages
    read again a seventh (common/sqlitebatch.py): batches are applied with the
    connection checkpointing only as a backstop (a thread does it) and a larger
    page cache, and both are back afterwards."""
    from common.sqlitebatch import BACKSTOP, RUN_CACHE_KIB

    if connection.vendor != "sqlite":
        pytest.skip("SQLite only: PostgreSQL has no WAL file to checkpoint")

    def pragma(name: str) -> int:
        with connection.cursor() as cursor:
            cursor.execute(f"PRAGMA {name}")
            return int(cursor.fetchone()[0])

    seen: list[tuple[int, int]] = []
    parse_all = processing._parse_all

    def spy(rows):
        seen.append((pragma("wal_autocheckpoint"), pragma("cache_size")))
        return parse_all(rows)

    monkeypatch.setattr(processing, "_parse_all", spy)
    sent_piece()
    store("sandbox", sandbox_body("e1", "sbx_1", "InTransit", 1))
    before = (pragma("wal_autocheckpoint"), pragma("cache_size"))
    assert before[0] > 0
    webhooks_process()
    assert seen == [(before[0] * BACKSTOP, -RUN_CACHE_KIB)]
    assert (pragma("wal_autocheckpoint"), pragma("cache_size")) == before


def test_reports_are_ordered_by_the_instant_they_happened_to_the_microsecond():
    """order_key() turns times into seconds: two reports a microsecond apart,
    or written in different time zones, still sort by the instant."""
    from pydantic import TypeAdapter

    parsed = TypeAdapter(dt.datetime).validate_python("2026-03-04T12:00:00.000001Z")  # pydantic's own zone
    paris = dt.datetime(2026, 3, 4, 13, 0, 0, 2, tzinfo=dt.timezone(dt.timedelta(hours=1)))  # 12:00:00.000002 UTC
    utc = dt.datetime(2026, 3, 4, 12, 0, tzinfo=dt.UTC)
    keys = [
        processing.order_key(paris, T0, 1, 0),
        processing.order_key(parsed, T0, 2, 0),
        processing.order_key(utc, T0, 3, 0),
        processing.order_key(None, utc - dt.timedelta(microseconds=1), 4, 0),  # received, never said when
    ]
    assert [key[2] for key in sorted(keys)] == [4, 3, 2, 1]
    assert processing.order_key(utc, T0, 9, 1) < processing.order_key(utc, T0, 9, 2)


# ---------------------------------------------------------------------------- plans
def _explain(sql: str, params: list) -> str:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL enable_seqscan = off")  # a tiny table: can an index answer?
            cursor.execute(f"EXPLAIN {sql}", params)
        else:
            cursor.execute(f"EXPLAIN QUERY PLAN {sql}", params)
        return "\n".join(str(row) for row in cursor.fetchall())


def _table_scans(plan: str, table: str) -> list[str]:
    """Plan lines that read every row of ``table`` (an index scan is fine)."""
    if connection.vendor == "sqlite":
        return [line for line in plan.splitlines() if f"SCAN {table}" in line and "USING" not in line]
    return [line for line in plan.splitlines() if f"Seq Scan on {table}" in line]


def test_the_claim_reads_pending_rows_from_their_index_not_the_whole_inbox():
    """With ``state`` as a parameter SQLite could not use the partial index of
    pending rows and read every processed row, body and all, for each batch."""
    processing._pg[0] = connection.vendor == "postgresql"
    params = [processing._uuid(processing.uuid.uuid4()), processing._db_time(T0), processing._db_time(T0), 10]
    plan = _explain(processing._claim_sql(), params)
    assert "inbound_webhook_pending" in plan, plan
    assert not _table_scans(plan, "mailpieces_inboundwebhook"), plan


def test_waiting_reports_are_found_from_their_index_not_every_report():
    plan = _explain(processing._adoptable_sql(), [10])
    assert "mailpiece_event_waiting" in plan, plan
    assert not _table_scans(plan, "mailpieces_mailpieceevent"), plan


def test_the_pending_count_reads_the_pending_rows_index():
    """The command's progress bar counts pending rows before each pass."""
    store("sandbox", sandbox_body("a", "sbx_1", "InTransit", 1))
    assert processing.webhooks_pending_count() == 1
    webhooks_process()
    assert processing.webhooks_pending_count() == 0
    plan = _explain(processing._pending_count_sql(), [])
    assert "inbound_webhook_pending" in plan, plan
    assert not _table_scans(plan, "mailpieces_inboundwebhook"), plan


@pytest.mark.parametrize(
    "value",
    [
        dt.datetime(2026, 3, 4, 12, 0, tzinfo=dt.UTC),
        dt.datetime(2026, 3, 4, 12, 0, 0, 123, tzinfo=dt.UTC),
        dt.datetime(2026, 3, 4, 14, 30, 5, 1, tzinfo=dt.timezone(dt.timedelta(hours=2, minutes=30))),
        dt.datetime(2026, 3, 4, 12, 0),
        "2026-03-04T12:00:00.5Z",  # pydantic's own time zone object
    ],
)
def test_times_are_written_as_django_writes_them_on_sqlite(value):
    """Comparisons in SQL (leases, the admin's filters) compare this text with Django's own."""
    from django.db.backends.sqlite3.base import DatabaseWrapper as SQLite

    if isinstance(value, str):
        from pydantic import TypeAdapter

        value = TypeAdapter(dt.datetime).validate_python(value)
    processing._pg[0] = False
    aware = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    django_text = SQLite.ops_class(connection).adapt_datetimefield_value(aware)
    assert processing._db_time(value) == django_text
