"""What ops see of webhooks: the inbox, each report's outcome, and the piece on the recipient."""

from __future__ import annotations

import pytest
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
