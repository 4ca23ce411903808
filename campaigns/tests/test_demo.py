from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.files.storage import default_storage
from django.core.management import call_command

from campaigns.demo import DEMO_CAMPAIGN, UNBILLABLE_CAMPAIGN
from campaigns.enums import ErrorMessages
from campaigns.models import Campaign, CampaignRecipient, ProofApproval, RecipientTransition
from mailpieces.models import Mailpiece, MailpieceEvent

pytestmark = pytest.mark.django_db


def test_demo_prints_a_working_admin_login_and_is_safe_twice(client):
    out = StringIO()
    call_command("demo", "--password", "s3cret-demo", stdout=out)
    text = out.getvalue()
    assert "http://127.0.0.1:8000/admin/" in text
    assert "Username:      admin" in text
    assert "Password:      s3cret-demo" in text
    count = CampaignRecipient.objects.count()
    assert count >= 10
    demo_campaign = Campaign.objects.get(name=DEMO_CAMPAIGN)
    outcomes = set(demo_campaign.recipients.values_list("status", "skip_reason"))
    assert {
        ("Received", ""),  # delivered: the printer's signed webhooks went through our endpoint
        ("Sent", ""),  # returned to sender: still Sent, the piece says Returned
        ("Holdout", ""),
        ("Blacklisted", ""),
        ("Skipped", "International"),
        ("Skipped", "NoAddress"),
        ("Skipped", "EnrichmentFailed"),
        ("Error", ""),  # the address the printer refused: one to practise a retry on
    } <= outcomes
    refused = demo_campaign.recipients.get(last_name="Babbage")
    assert refused.status == "Error"
    assert refused.error_message == ErrorMessages.FAILED_TO_MAKE_MAIL_PIECE  # the printer said no: docs/mailing.md
    enriched = CampaignRecipient.objects.get(first_name="John", last_name="Backus")
    assert enriched.address1
    assert enriched.status in ("Sent", "Received", "Holdout")
    assert "Skipped (International): 1" in text
    # Every proofed recipient has both sides stored, and the samples were approved by the demo user.
    for r in demo_campaign.recipients.filter(status__in=["Sent", "Received"]):
        assert default_storage.exists(r.proof_url)
        assert default_storage.exists(r.proof_back_url)
        assert r.discount_code.startswith("WINTER-")
    assert ProofApproval.objects.get(campaign=demo_campaign).approved_by.username == "admin"
    # The org that cannot be billed: every recipient Error with the spec's message, nothing rendered.
    lapsed = Campaign.objects.get(name=UNBILLABLE_CAMPAIGN)
    assert set(lapsed.recipients.values_list("status", "error_message")) == {
        ("Error", "Org billing is not ready to send")
    }
    assert not lapsed.recipients.exclude(proof_url="").exists()
    assert not lapsed.recipients.exclude(discount_code="").exists()
    assert "/proofs/" in text
    # Tracked to the mailbox: most pieces Delivered, every fifth Returned, one late report kept and ignored.
    pieces = Mailpiece.objects.filter(recipient__campaign=demo_campaign)
    delivered, returned = pieces.filter(status="Delivered").count(), pieces.filter(status="Returned").count()
    assert delivered >= 8
    assert returned >= 2
    assert demo_campaign.recipients.filter(status="Received").count() == delivered
    assert MailpieceEvent.objects.filter(outcome="ignored", note__contains="never moves back").count() == 1
    assert "1 delivered twice, 0 refused" in text
    assert RecipientTransition.objects.filter(from_status="").count() == count
    # Every recipient's history starts at creation and ends at its status.
    for r in CampaignRecipient.objects.all():
        assert r.transitions.order_by("-created", "-id").first().to_status == r.status

    call_command("demo", stdout=StringIO())
    assert CampaignRecipient.objects.count() == count

    # The second run set a new random password: the old one no longer works.
    assert authenticate(username="admin", password="s3cret-demo") is None
    client.force_login(get_user_model().objects.get(username="admin"))
    response = client.get("/admin/campaigns/campaignrecipient/")
    assert response.status_code == 200
    assert b"Lovelace" in response.content
