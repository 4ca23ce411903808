from __future__ import annotations

from http import HTTPStatus

import pytest
from django.urls import reverse

from campaigns.models import CampaignRecipient, RecipientTransition
from campaigns.revalidation import recipients_revalidate
from campaigns.sync import recipients_sync
from campaigns.tests.factories import BlocklistEntryFactory, CampaignFactory, CampaignRecipientFactory
from common.fsm import Actor

pytestmark = pytest.mark.django_db
S = CampaignRecipient.Status
ACTOR = Actor("test")


def imported_without_zip() -> CampaignRecipient:
    campaign = CampaignFactory(holdout_percent=0)
    row = {
        "first_name": "Ada",
        "address1": "1 Main St",
        "city": "Springfield",
        "state": "IL",
        "zip": "",
        "country": "US",
    }
    recipients_sync(campaign=campaign, rows=[row], actor=ACTOR)
    r = campaign.recipients.get()
    assert (r.status, r.skip_reason) == (S.SKIPPED, "International")
    return r


def test_unfixed_data_is_skipped_again_with_the_current_errors():
    r = imported_without_zip()
    outcome = recipients_revalidate(queryset=CampaignRecipient.objects.filter(pk=r.pk), actor=ACTOR)
    r.refresh_from_db()
    assert outcome == {"Skipped": 1}
    assert (r.status, r.skip_reason) == (S.SKIPPED, "International")
    assert r.json["validation_errors"] == [{"field": "zip", "message": "zip is empty"}]
    assert list(r.transitions.order_by("id").values_list("from_status", "to_status")) == [
        ("", "Skipped"),
        ("Skipped", "Pending"),
        ("Pending", "Skipped"),
    ]


def test_fixed_data_is_qualified_and_staged():
    r = imported_without_zip()
    CampaignRecipient.objects.filter(pk=r.pk).update(zip="62701")
    outcome = recipients_revalidate(queryset=CampaignRecipient.objects.filter(pk=r.pk), actor=ACTOR)
    r.refresh_from_db()
    assert outcome == {"ProofingStaged": 1}
    assert (r.status, r.skip_reason) == (S.PROOFING_STAGED, "")
    assert "validation_errors" not in r.json


def test_a_recipient_still_on_the_blocklist_goes_back_to_blacklisted():
    r = CampaignRecipientFactory(status=S.BLACKLISTED, address1="1 Blocked Way", zip="62701")
    BlocklistEntryFactory(organization=r.campaign.organization, address1="1 Blocked Way", zip="62701")
    recipients_revalidate(queryset=CampaignRecipient.objects.filter(pk=r.pk), actor=ACTOR)
    r.refresh_from_db()
    assert r.status == S.BLACKLISTED


def test_twice_is_harmless_and_other_states_are_untouched():
    r = imported_without_zip()
    CampaignRecipient.objects.filter(pk=r.pk).update(zip="62701")
    sent = CampaignRecipientFactory(campaign=r.campaign, status=S.SENT)
    qs = CampaignRecipient.objects.filter(pk__in=[r.pk, sent.pk])
    recipients_revalidate(queryset=qs, actor=ACTOR)
    count = RecipientTransition.objects.count()
    assert recipients_revalidate(queryset=qs, actor=ACTOR) == {}
    assert RecipientTransition.objects.count() == count
    assert CampaignRecipient.objects.get(pk=sent.pk).status == S.SENT


def test_the_admin_action_reports_where_they_went(admin_client):
    r = imported_without_zip()
    fixed = CampaignRecipientFactory(campaign=r.campaign, status=S.SKIPPED, skip_reason="NoAddress")
    url = reverse("admin:campaigns_campaignrecipient_changelist")
    response = admin_client.post(
        url, {"action": "revalidate", "_selected_action": [str(r.pk), str(fixed.pk)]}, follow=True
    )
    assert response.status_code == HTTPStatus.OK
    assert "Re-validated 2 recipient(s): 1 queued for proofing, 1 skipped." in response.content.decode()
