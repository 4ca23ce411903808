"""Webhook processing at its edges: the run's loop, its clock, the walk's
bookkeeping and the reasons it records.  Each test was written against a
mutant of ``mailpieces/webhooks/processing.py`` that the other tests let live
(docs/mutation.md, "mailpieces/webhooks/processing.py")."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.db import transaction

from campaigns.models import CampaignRecipient
from mailpieces.models import InboundWebhook, Mailpiece, MailpieceEvent
from mailpieces.status import MailpieceStatus as S
from mailpieces.tests.test_webhook_endpoints import stannp_form_body
from mailpieces.tests.test_webhook_processing import T0, sandbox_body, sent_piece, store
from mailpieces.webhooks import processing
from mailpieces.webhooks.processing import ProcessReport, Report, webhooks_process
from printers.base import PrinterEvent

pytestmark = pytest.mark.django_db

Outcome = MailpieceEvent.Outcome
State = InboundWebhook.State


def at(minutes: int) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


# ---------------------------------------------------------------------------- the run's loop
def test_a_run_takes_batches_of_the_given_size_and_reports_each_one() -> None:
    for i in range(5):
        sent_piece(printer_id=f"sbx_{i}")
        store("sandbox", sandbox_body(f"e{i}", f"sbx_{i}", "InTransit", i))
    seen: list[ProcessReport] = []

    total = webhooks_process(batch_size=2, on_batch=seen.append)

    assert [r.deliveries for r in seen] == [2, 2, 1]
    assert [r.applied for r in seen] == [2, 2, 1]
    assert total.deliveries == total.applied == 5
    assert not InboundWebhook.objects.filter(state=State.PENDING).exists()


def test_a_batch_of_unreadable_deliveries_does_not_end_the_run() -> None:
    piece = sent_piece()
    store("sandbox", b"not json")
    store("sandbox", b"{also not json")
    store("sandbox", sandbox_body("good", "sbx_1", "InTransit", 1))

    report = webhooks_process(batch_size=2)

    assert report.quarantined == 2
    piece.refresh_from_db()
    assert piece.status == S.IN_TRANSIT


def test_a_batch_whose_rows_all_fail_does_not_end_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two poison rows fill the first batch; the run retries them until they
    are quarantined and still reaches the good row behind them."""
    original = processing.apply_reports

    def poisoned(reports: Any, **kwargs: Any) -> ProcessReport:
        if any(r.event.event_id.startswith("poison") for r in reports):
            raise RuntimeError("boom")
        return original(reports, **kwargs)

    monkeypatch.setattr(processing, "apply_reports", poisoned)
    piece = sent_piece()
    sent_piece(printer_id="sbx_2")
    bad = [store("sandbox", sandbox_body(f"poison{i}", "sbx_2", "InTransit", i)) for i in range(2)]
    store("sandbox", sandbox_body("good", "sbx_1", "InTransit", 1))

    report = webhooks_process(batch_size=2)

    piece.refresh_from_db()
    assert piece.status == S.IN_TRANSIT
    assert report.failed == 2 * processing.MAX_ATTEMPTS
    for row in InboundWebhook.objects.filter(pk__in=bad):
        assert row.state == State.QUARANTINED
        assert row.attempts == processing.MAX_ATTEMPTS
        assert row.processed_at is not None
        assert row.error == "processing failed: RuntimeError: boom"
        assert row.claim_token is None


def test_the_run_stamps_rows_and_reports_with_its_clock() -> None:
    sent_piece()
    row = store("sandbox", sandbox_body("e1", "sbx_1", "InTransit", 1))
    clock = dt.datetime(2026, 5, 6, 7, 8, 9, tzinfo=dt.UTC)

    webhooks_process(now=clock)

    assert InboundWebhook.objects.get(pk=row).processed_at == clock
    event = MailpieceEvent.objects.get(event_key="e1")
    assert event.created == event.decided_at == clock


def test_adoption_goes_on_while_each_round_is_full(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reports that waited for their pieces are adopted ``ADOPT_LIMIT`` at a
    time until a round comes back short."""
    for i in range(3):
        store("sandbox", sandbox_body(f"early{i}", f"sbx_{i}", "InTransit", i))
    webhooks_process()
    assert MailpieceEvent.objects.filter(outcome=Outcome.WAITING).count() == 3
    pieces = [sent_piece(printer_id=f"sbx_{i}") for i in range(3)]
    monkeypatch.setattr(processing, "ADOPT_LIMIT", 1)

    report = webhooks_process()

    assert report.adopted == 3
    assert not MailpieceEvent.objects.filter(outcome=Outcome.WAITING).exists()
    for piece in pieces:
        piece.refresh_from_db()
        assert piece.status == S.IN_TRANSIT


# ---------------------------------------------------------------------------- the walk
def test_a_report_after_delivered_in_the_same_batch_keeps_the_recipient_received() -> None:
    piece = sent_piece()
    store("sandbox", sandbox_body("e1", "sbx_1", "InTransit", 1))
    store("sandbox", sandbox_body("e2", "sbx_1", "Delivered", 2))
    store("sandbox", sandbox_body("e3", "sbx_1", "InTransit", 3))  # behind Delivered: ignored

    report = webhooks_process()

    assert (report.applied, report.ignored, report.received) == (2, 1, 1)
    piece.refresh_from_db()
    assert piece.status == S.DELIVERED
    assert piece.recipient.status == CampaignRecipient.Status.RECEIVED


def _report(piece: Mailpiece, key: str, status: S, occurred_at: dt.datetime | None, vendor_status: str) -> Report:
    event = PrinterEvent(
        printer_id=piece.printer_id,
        vendor_status=vendor_status,
        status=status,
        occurred_at=occurred_at,
        event_id=key,
    )
    return Report(piece.printer, event, None, processing.order_key(occurred_at, T0, 0, 0))


def test_status_time_only_moves_forward_and_only_with_a_time() -> None:
    piece = sent_piece()
    Mailpiece.objects.filter(pk=piece.pk).update(status=S.PRODUCING, status_at=at(10))

    with transaction.atomic():
        processing.apply_reports([_report(piece, "no-time", S.HANDED_OVER, None, "handed")], now=at(20))
    piece.refresh_from_db()
    assert (piece.status, piece.status_at, piece.last_vendor_status) == (S.HANDED_OVER, at(10), "handed")

    with transaction.atomic():  # a late scan: forward in rank, earlier in time
        processing.apply_reports([_report(piece, "late-scan", S.IN_TRANSIT, at(5), "transit")], now=at(21))
    piece.refresh_from_db()
    assert (piece.status, piece.status_at, piece.last_vendor_status) == (S.IN_TRANSIT, at(10), "transit")

    with transaction.atomic():
        processing.apply_reports([_report(piece, "later", S.DELIVERED, at(30), "delivered")], now=at(22))
    piece.refresh_from_db()
    assert (piece.status, piece.status_at) == (S.DELIVERED, at(30))


@pytest.mark.parametrize(
    ("current", "target", "note"),
    [
        (S.DELIVERED, S.DELIVERED, "the piece is already Delivered"),
        (S.CANCELLED, S.IN_TRANSIT, "the piece is Cancelled, which is final"),
        (S.DELIVERED, S.ERROR, "an error report after Delivered does not undo it"),
        (S.DELIVERED, S.IN_TRANSIT, "In Transit is behind Delivered: a piece never moves back"),
    ],
)
def test_an_ignored_report_says_why(current: S, target: S, note: str) -> None:
    piece = sent_piece()
    Mailpiece.objects.filter(pk=piece.pk).update(status=current)

    with transaction.atomic():
        processing.apply_reports([_report(piece, "k", target, at(1), "v")], now=at(2))

    event = MailpieceEvent.objects.get(event_key="k")
    assert event.outcome == Outcome.IGNORED
    assert event.note == note  # the statuses' labels, as ops see them in the admin


# ---------------------------------------------------------------------------- reading the rows
def test_a_form_encoded_stannp_delivery_is_read_with_its_content_type() -> None:
    piece = sent_piece("stannp", "52000417")
    row = store("stannp", stannp_form_body(), content_type="application/x-www-form-urlencoded")

    webhooks_process()

    assert InboundWebhook.objects.get(pk=row).state == State.PROCESSED
    piece.refresh_from_db()
    assert piece.status == S.DELIVERED


def test_a_parser_bug_quarantines_the_row_with_the_error_named(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: Any, raw: bytes, content_type: str = "application/json") -> list[PrinterEvent]:
        raise KeyError("data")

    parser = processing._parser("sandbox")
    monkeypatch.setattr(type(parser), "parse_webhook", broken)
    row = store("sandbox", sandbox_body("e1", "sbx_1", "InTransit", 1))

    webhooks_process()

    inbox = InboundWebhook.objects.get(pk=row)
    assert inbox.state == State.QUARANTINED
    assert inbox.error == "KeyError: 'data'"


# ---------------------------------------------------------------------------- recorded reports
def test_a_redelivered_report_is_a_duplicate_and_its_record_stands() -> None:
    piece = sent_piece()
    Mailpiece.objects.filter(pk=piece.pk).update(status=S.DELIVERED)
    store("sandbox", sandbox_body("late", "sbx_1", "InTransit", 1), event_id="delivery-1")
    first = webhooks_process(now=at(100))
    store("sandbox", sandbox_body("late", "sbx_1", "InTransit", 1), event_id="delivery-2")  # the vendor's retry

    again = webhooks_process(now=at(200))

    assert (first.ignored, first.duplicates) == (1, 0)
    assert (again.ignored, again.duplicates, again.applied) == (0, 1, 0)
    event = MailpieceEvent.objects.get(event_key="late")
    assert (event.outcome, event.decided_at) == (Outcome.IGNORED, at(100))


def test_an_adopted_report_keeps_its_time_and_delivery_and_is_stamped_when_decided() -> None:
    row = store("sandbox", sandbox_body("early", "sbx_1", "InTransit", 3))
    first = webhooks_process(now=at(100))
    assert (first.waiting, first.applied) == (1, 0)
    piece = sent_piece()

    second = webhooks_process(now=at(200))

    assert (second.adopted, second.applied, second.waiting) == (1, 1, 0)
    event = MailpieceEvent.objects.get(event_key="early")
    assert (event.outcome, event.occurred_at, event.decided_at) == (Outcome.APPLIED, at(3), at(200))
    assert event.mailpiece_id == piece.pk
    piece.refresh_from_db()
    assert (piece.status, piece.status_at) == (S.IN_TRANSIT, at(3))
    assert piece.transitions.get().payload == {"event": "early", "inbox": row}


def test_reports_about_two_unknown_pieces_both_wait() -> None:
    store("sandbox", sandbox_body("a", "sbx_a", "InTransit", 1))
    store("sandbox", sandbox_body("b", "sbx_b", "InTransit", 2))

    report = webhooks_process()

    assert report.waiting == 2
    assert set(MailpieceEvent.objects.values_list("event_key", "outcome")) == {
        ("a", Outcome.WAITING),
        ("b", Outcome.WAITING),
    }


def test_an_unreadable_item_before_a_good_one_costs_it_nothing() -> None:
    piece = sent_piece()
    bad = PrinterEvent(
        printer_id="", vendor_status="", status=S.UNKNOWN, occurred_at=at(1), event_id="bad", problem="no id"
    )
    reports = [
        Report("sandbox", bad, None, processing.order_key(at(1), T0, 0, 0)),
        _report(piece, "good", S.IN_TRANSIT, at(2), "transit"),
    ]

    with transaction.atomic():
        report = processing.apply_reports(reports, now=at(3))

    assert (report.problems, report.applied) == (1, 1)
    piece.refresh_from_db()
    assert piece.status == S.IN_TRANSIT
    assert MailpieceEvent.objects.get(event_key="bad").note == "no id"


def test_two_redelivered_reports_count_as_two_duplicates() -> None:
    sent_piece()
    for key in ("a", "b"):
        store("sandbox", sandbox_body(key, "sbx_1", "InTransit", 1), event_id=f"first-{key}")
    webhooks_process()
    for key in ("a", "b"):
        store("sandbox", sandbox_body(key, "sbx_1", "InTransit", 1), event_id=f"again-{key}")

    assert webhooks_process().duplicates == 2


def test_a_row_that_failed_once_ends_processed_with_no_error_and_no_claim(monkeypatch: pytest.MonkeyPatch) -> None:
    original = processing.apply_reports
    calls = {"n": 0}

    def fails_once(reports: Any, **kwargs: Any) -> ProcessReport:
        calls["n"] += 1
        if calls["n"] <= 2:  # the batch, then the row on its own
            raise RuntimeError("a moment's trouble")
        return original(reports, **kwargs)

    monkeypatch.setattr(processing, "apply_reports", fails_once)
    sent_piece()
    row = store("sandbox", sandbox_body("e1", "sbx_1", "InTransit", 1))
    unreadable = store("sandbox", b"not json")

    webhooks_process()
    assert InboundWebhook.objects.get(pk=row).error == "processing failed: RuntimeError: a moment's trouble"
    webhooks_process()  # the next run

    inbox = InboundWebhook.objects.get(pk=row)
    assert (inbox.state, inbox.attempts, inbox.error) == (State.PROCESSED, 1, "")
    assert (inbox.claim_token, inbox.lease_until) == (None, None)
    quarantined = InboundWebhook.objects.get(pk=unreadable)
    assert quarantined.state == State.QUARANTINED
    assert (quarantined.claim_token, quarantined.lease_until) == (None, None)


def test_a_row_taken_over_by_another_run_is_skipped_and_the_rest_applied() -> None:
    for i in range(3):
        sent_piece(printer_id=f"sbx_{i}")
        store("sandbox", sandbox_body(f"e{i}", f"sbx_{i}", "InTransit", i))
    batch = processing._claim_batch(10, None)
    taken = batch.rows[1].pk
    InboundWebhook.objects.filter(pk=taken).update(claim_token=processing.uuid.uuid4())  # its lease ran out

    report = processing._apply_batch(processing._parse_all(batch.rows), batch.token, batch.now)

    assert report.deliveries == 2
    states = dict(InboundWebhook.objects.values_list("pk", "state"))
    assert [states[r.pk] for r in batch.rows] == [State.PROCESSED, State.PENDING, State.PROCESSED]


def test_a_person_who_applies_reports_is_in_the_history(django_user_model: Any) -> None:
    from common.fsm import Actor

    user = django_user_model.objects.create_user("ops", password="x")
    piece = sent_piece()

    with transaction.atomic():
        processing.apply_reports(
            [_report(piece, "k", S.IN_TRANSIT, at(1), "transit")], now=at(2), actor=Actor("admin", user)
        )

    move = piece.transitions.get()
    assert (move.source, move.acting_user_id) == ("admin", user.pk)


def test_rows_that_cannot_be_read_are_named_with_their_reason() -> None:
    good = store("sandbox", sandbox_body("e1", "sbx_1", "InTransit", 1))
    bad = store("sandbox", b"not json")

    reports, broken = processing.reports_from_rows(InboundWebhook.objects.filter(pk__in=[good, bad]).order_by("pk"))

    assert [r.inbox_id for r in reports] == [good]
    assert [pk for pk, _ in broken] == [bad]
    assert "not JSON" in broken[0][1]
