"""reprocess_webhooks: stored deliveries re-read after a fix, idempotently."""

from __future__ import annotations

import datetime as dt
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from mailpieces.models import InboundWebhook, MailpieceEvent
from mailpieces.status import MailpieceStatus as S
from mailpieces.tests.test_webhook_processing import sandbox_body, sent_piece, statuses_of, store
from mailpieces.webhooks import processing
from mailpieces.webhooks.processing import webhooks_process
from mailpieces.webhooks.reprocess import webhooks_reprocess
from printers.sandbox.client import SandboxPrinter

pytestmark = pytest.mark.django_db
SINCE = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


@pytest.fixture
def teleported_unmapped():
    """Yesterday's mapping did not know "Teleported"; today's fix maps it to InTransit."""
    store("sandbox", sandbox_body("t", "sbx_1", "Teleported", 1))
    piece = sent_piece()
    webhooks_process()
    piece.refresh_from_db()
    assert piece.status == S.SUBMITTED
    return piece


def fix_mapping(monkeypatch):
    monkeypatch.setattr(SandboxPrinter, "status_map", {**SandboxPrinter.status_map, "Teleported": S.IN_TRANSIT})


def test_after_a_mapping_fix_an_ignored_report_is_applied(teleported_unmapped, monkeypatch):
    fix_mapping(monkeypatch)
    report = webhooks_reprocess(printer="sandbox", since=SINCE)
    piece = teleported_unmapped
    piece.refresh_from_db()
    assert piece.status == S.IN_TRANSIT
    event = MailpieceEvent.objects.get(event_key="t")
    assert (event.outcome, event.status) == ("applied", S.IN_TRANSIT)
    assert report.result is not None
    assert report.result.applied == 1


def test_reprocessing_twice_changes_nothing_the_second_time(teleported_unmapped, monkeypatch):
    fix_mapping(monkeypatch)
    webhooks_reprocess(printer="sandbox", since=SINCE)
    again = webhooks_reprocess(printer="sandbox", since=SINCE)
    assert again.result is not None
    assert again.result.applied == 0
    assert statuses_of(teleported_unmapped) == [("Submitted", "InTransit")]
    assert MailpieceEvent.objects.count() == 1


def test_an_applied_report_is_never_applied_again():
    piece = sent_piece()
    store("sandbox", sandbox_body("d", "sbx_1", "Delivered", 1))
    webhooks_process()
    webhooks_reprocess(printer="sandbox", since=SINCE)
    assert statuses_of(piece) == [("Submitted", "Delivered")]
    event = MailpieceEvent.objects.get(event_key="d")
    assert (event.outcome, event.note) == ("applied", "")  # its record is not rewritten either
    assert piece.recipient.transitions.filter(to_status="Received").count() == 1


def test_a_dry_run_reports_the_change_and_writes_nothing(teleported_unmapped, monkeypatch):
    fix_mapping(monkeypatch)
    report = webhooks_reprocess(printer="sandbox", since=SINCE, dry_run=True)
    assert report.result is not None
    assert report.result.applied == 1
    teleported_unmapped.refresh_from_db()
    assert teleported_unmapped.status == S.SUBMITTED
    assert MailpieceEvent.objects.get(event_key="t").outcome == "ignored"


def test_a_quarantined_delivery_that_reads_now_is_processed(monkeypatch):
    piece = sent_piece()
    row = store("sandbox", sandbox_body("q", "sbx_1", "Delivered", 1))

    def broken(self, raw, content_type="application/json"):
        raise ValueError("sandbox webhook body is not a sandbox event: our bug")

    with monkeypatch.context() as m:
        m.setattr(SandboxPrinter, "parse_webhook", broken)
        processing._parsers.clear()
        webhooks_process()
    processing._parsers.clear()
    assert InboundWebhook.objects.get(pk=row).state == "quarantined"
    report = webhooks_reprocess(printer="sandbox", since=SINCE)
    inbox = InboundWebhook.objects.get(pk=row)
    assert (inbox.state, inbox.error, inbox.events_count) == ("processed", "", 1)
    piece.refresh_from_db()
    assert piece.status == S.DELIVERED
    assert report.unquarantined == 1


def test_only_the_named_printer_and_period_are_read(teleported_unmapped, monkeypatch):
    fix_mapping(monkeypatch)
    report = webhooks_reprocess(printer="lob", since=SINCE)
    assert report.rows == 0
    future = dt.datetime(2100, 1, 1, tzinfo=dt.UTC)
    assert webhooks_reprocess(printer="sandbox", since=future).rows == 0


def test_the_command_says_what_it_did_and_refuses_bad_arguments(teleported_unmapped, monkeypatch):
    fix_mapping(monkeypatch)
    out = StringIO()
    call_command("reprocess_webhooks", "--printer", "sandbox", "--since", "2000-01-01", "--dry-run", stdout=out)
    assert "Dry run, nothing changed: 1 deliveries re-read, 1 reports applied" in out.getvalue()
    with pytest.raises(CommandError, match="Unknown printer 'nope'"):
        call_command("reprocess_webhooks", "--printer", "nope", "--since", "2000-01-01")
    with pytest.raises(CommandError, match="is not a date"):
        call_command("reprocess_webhooks", "--printer", "sandbox", "--since", "yesterday")
