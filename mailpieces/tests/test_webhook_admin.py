"""What ops see of webhooks: the inbox, each report's outcome, and the piece on the recipient."""

from __future__ import annotations

import pytest
from django.db import connection
from django.urls import reverse

from mailpieces.models import InboundWebhook, MailpieceEvent
from mailpieces.tests.test_webhook_processing import sandbox_body, sent_piece, store
from mailpieces.webhooks.processing import webhooks_process

pytestmark = pytest.mark.django_db


@pytest.fixture
def processed():
    piece = sent_piece()
    store("sandbox", sandbox_body("evt_d", "sbx_1", "Delivered", 1), event_id="evt_d")
    webhooks_process()
    store("sandbox", sandbox_body("evt_t", "sbx_1", "InTransit", 0), event_id="evt_t")  # late
    bad = store("sandbox", b"<html>not json</html>", event_id="sha256:bad")
    webhooks_process()
    return piece, bad


def test_the_inbox_shows_the_raw_body_the_state_and_the_reports(admin_client, processed):
    _, bad = processed
    listing = admin_client.get(reverse("admin:mailpieces_inboundwebhook_changelist") + "?state=quarantined")
    assert listing.status_code == 200
    assert b"sha256:bad" in listing.content
    assert b"evt_d" not in listing.content
    page = admin_client.get(reverse("admin:mailpieces_inboundwebhook_change", args=[bad]))
    assert b"&lt;html&gt;not json&lt;/html&gt;" in page.content  # the body, escaped
    assert b"not JSON" in page.content  # the reason
    delivered = InboundWebhook.objects.get(event_id="evt_d")
    page = admin_client.get(reverse("admin:mailpieces_inboundwebhook_change", args=[delivered.pk]))
    assert b"Delivered" in page.content


def test_nothing_printers_said_can_be_edited_added_or_deleted(admin_client, processed):
    _, bad = processed
    assert admin_client.get(reverse("admin:mailpieces_inboundwebhook_add")).status_code == 403
    assert admin_client.post(reverse("admin:mailpieces_inboundwebhook_delete", args=[bad])).status_code == 403
    event = MailpieceEvent.objects.first()
    assert event is not None
    assert admin_client.post(reverse("admin:mailpieces_mailpieceevent_delete", args=[event.pk])).status_code == 403
    page = admin_client.get(reverse("admin:mailpieces_inboundwebhook_change", args=[bad]))
    assert b'name="_save"' not in page.content
    assert InboundWebhook.objects.count() == 3


def test_the_piece_page_lists_every_report_with_its_outcome(admin_client, processed):
    piece, _ = processed
    page = admin_client.get(reverse("admin:mailpieces_mailpiece_change", args=[piece.pk]))
    content = page.content.decode()
    assert "Printer reports" in content
    assert "Applied" in content
    assert "Ignored" in content
    assert "a piece never moves back" in content


def test_the_recipient_page_shows_its_mailpiece_and_the_printers_word(admin_client, processed):
    piece, _ = processed
    page = admin_client.get(reverse("admin:campaigns_campaignrecipient_change", args=[piece.recipient_id]))
    content = page.content.decode()
    assert "sbx_1" in content
    assert "<strong>Delivered</strong>" in content
    listing = admin_client.get(
        reverse("admin:campaigns_campaignrecipient_changelist") + "?mailpieces__status=Delivered"
    )
    assert listing.status_code == 200
    assert str(piece.recipient) in listing.content.decode()


# ---------------------------------------------------------------------------- searching printer reports
def events_found(admin_client, term: str) -> set[str]:
    page = admin_client.get(reverse("admin:mailpieces_mailpieceevent_changelist"), {"q": term})
    assert page.status_code == 200
    return {e.event_key for e in page.context["cl"].result_list}


def test_report_search_finds_a_pieces_reports_the_waiting_ones_and_a_report_by_its_id(admin_client):
    sent_piece(printer_id="sbx_1")
    sent_piece(printer_id="sbx_2")
    store("sandbox", sandbox_body("e1", "sbx_1", "InTransit", 1))
    store("sandbox", sandbox_body("e2", "sbx_1", "Delivered", 2))
    store("sandbox", sandbox_body("e3", "sbx_2", "InTransit", 1))
    store("sandbox", sandbox_body("w1", "sbx_9", "InTransit", 1))  # no such piece yet: waiting
    webhooks_process()
    MailpieceEvent.objects.create(  # an item that could not be read: no piece
        printer="sandbox", printer_id="sbx_1", event_key="p1", status="Unknown", outcome="problem", note="no status"
    )
    assert events_found(admin_client, "sbx_1") == {"e1", "e2", "p1"}
    assert events_found(admin_client, " sbx_9 ") == {"w1"}
    assert events_found(admin_client, "e3") == {"e3"}
    assert events_found(admin_client, "sbx") == set()  # whole values only


def _plan(qs) -> str:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL enable_seqscan = off")  # a tiny table: can an index answer?
    return qs.explain()


def test_report_search_reads_indexes_not_every_report(rf, admin_user):
    from django.contrib import admin as django_admin

    sent_piece(printer_id="sbx_1")
    model_admin = django_admin.site._registry[MailpieceEvent]
    request = rf.get("/")
    request.user = admin_user
    qs, _ = model_admin.get_search_results(request, MailpieceEvent.objects.order_by(), "sbx_1")
    plan = _plan(qs)
    if connection.vendor == "sqlite":
        assert "SCAN mailpieces_mailpieceevent" not in plan, plan
    else:
        assert "Seq Scan on mailpieces_mailpieceevent" not in plan, plan
    assert "mailpiece_event_by_piece" in plan, plan
    assert "mailpiece_event_waiting" in plan, plan
    assert "mailpiece_event_problem" in plan, plan
    # The unique constraint's index: SQLite names it sqlite_autoindex_…
    assert "mailpiece_event_unique_key" in plan or "(printer=? AND event_key=?)" in plan, plan
