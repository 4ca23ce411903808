"""Changing a campaign's printer once it has recipients.  A card whose
outcome is unknown at the old printer (being sent, or waiting to be tried
again) is looked up at the campaign's printer on its next attempt: the new
printer would find nothing and print it a second time.  So the switch waits
until no card is in flight; and recipients waiting to be proofed or mailed
must meet the new printer's address rules."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from campaigns.models import Campaign, CampaignRecipient
from campaigns.tests.factories import CampaignFactory, CampaignRecipientFactory

pytestmark = pytest.mark.django_db
S = CampaignRecipient.Status


@pytest.fixture
def printers_on(settings):
    conf = {kind: dict(value) for kind, value in settings.PRINTERS_CONF.items()}
    for kind in ("lob", "intelliprint"):
        conf[kind].update(enabled=True, api_key="key")
    settings.PRINTERS_CONF = conf


def switch(campaign: Campaign, printer: str) -> None:
    campaign = Campaign.objects.get(pk=campaign.pk)
    campaign.printer = printer
    campaign.full_clean()
    campaign.save()


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (S.SENDING, ""),
        (S.SENDING_STAGED, ""),
        (S.SCHEDULED, ""),
        (S.ERROR, "Failed submission to Mailing Queue"),  # sent before: its piece may exist
    ],
    ids=["being sent", "waiting to be tried again", "scheduled and tried", "error sent before"],
)
def test_no_switch_while_a_card_may_be_at_the_old_printer(printers_on, status, message):
    campaign = CampaignFactory(printer="sandbox")
    CampaignRecipientFactory(campaign=campaign, status=status, first_attempt_at=timezone.now(), error_message=message)
    with pytest.raises(ValidationError) as info:
        switch(campaign, "lob")
    assert "could print them twice" in " ".join(info.value.message_dict["printer"])
    assert Campaign.objects.get(pk=campaign.pk).printer == "sandbox"


def test_waiting_recipients_must_meet_the_new_printers_address_rules(printers_on):
    campaign = CampaignFactory(printer="sandbox")
    CampaignRecipientFactory(campaign=campaign, status=S.PROOFED, first_name="Ada", last_name="Lovelace")
    with pytest.raises(ValidationError) as info:
        switch(campaign, "intelliprint")  # UK addresses only
    said = " ".join(info.value.message_dict["printer"])
    assert said.startswith("1 recipient(s) waiting to be proofed or mailed do not meet IntelliPrint")
    assert "for example Ada Lovelace: " in said


def test_a_switch_every_waiting_recipient_meets_is_allowed(printers_on):
    campaign = CampaignFactory(printer="sandbox")
    CampaignRecipientFactory(campaign=campaign, status=S.PROOFED)  # a US address Lob takes
    CampaignRecipientFactory(campaign=campaign, status=S.SENT, first_attempt_at=timezone.now())  # mailed: done
    CampaignRecipientFactory(
        campaign=campaign, status=S.ERROR, error_message="Failed submission to Printer", first_attempt_at=timezone.now()
    )  # nothing at the printer
    switch(campaign, "lob")
    assert Campaign.objects.get(pk=campaign.pk).printer == "lob"
