"""A row waiting in a queue after a transient failure says why, in the
list's Why column: it is not in Error (its retries last), but ops at 2 a.m.
want to see what the printer answered and that it will be tried again."""

from __future__ import annotations

import pytest
from django.urls import reverse

from campaigns.models import CampaignRecipient
from campaigns.tests.test_mailing_stage import mail, ready_campaign
from printers import conftest as printer_fixtures

pytestmark = pytest.mark.django_db
simulator = printer_fixtures.simulator
S = CampaignRecipient.Status
CHANGELIST = reverse("admin:campaigns_campaignrecipient_changelist")


def test_a_row_waiting_after_a_printer_failure_says_why_in_the_list(admin_client, simulator):
    from printers.simulator import Fault

    campaign, (r,) = ready_campaign(1)
    simulator.inject("sandbox", Fault.status(503, method="POST"))
    mail(campaign)
    r.refresh_from_db()
    assert r.status == S.SENDING_STAGED
    assert r.why.startswith("Will try again (1 attempt so far): ")
    assert "503" in r.why
    listing = admin_client.get(CHANGELIST, {"status": S.SENDING_STAGED}).content.decode()
    assert "Will try again (1 attempt so far)" in listing


def test_a_row_waiting_for_billing_says_so():
    r = CampaignRecipient(status=S.SENDING_STAGED, error_detail="waiting: billing is not ready (no card on file)")
    assert r.why == "Waiting: billing is not ready (no card on file)"
    assert CampaignRecipient(status=S.SENT, error_detail="timeout").why == ""
