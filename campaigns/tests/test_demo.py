from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.management import call_command

from campaigns.models import CampaignRecipient, RecipientTransition

pytestmark = pytest.mark.django_db


def test_demo_prints_a_working_admin_login_and_is_safe_twice(client):
    out = StringIO()
    call_command("demo", "--password", "s3cret-demo", stdout=out)
    text = out.getvalue()
    assert "http://127.0.0.1:8000/admin/" in text
    assert "Username:   admin" in text
    assert "Password:   s3cret-demo" in text
    count = CampaignRecipient.objects.count()
    assert count >= 10
    outcomes = set(CampaignRecipient.objects.values_list("status", "skip_reason"))
    assert {
        ("ProofingStaged", ""),
        ("Holdout", ""),
        ("Blacklisted", ""),
        ("Skipped", "International"),
        ("Skipped", "NoAddress"),
        ("Skipped", "EnrichmentFailed"),
    } <= outcomes
    enriched = CampaignRecipient.objects.get(first_name="John", last_name="Backus")
    assert enriched.address1
    assert enriched.status in ("ProofingStaged", "Holdout")
    assert "Skipped (International): 1" in text
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
