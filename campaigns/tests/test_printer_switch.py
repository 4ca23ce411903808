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
from printers import conftest as printer_fixtures

pytestmark = pytest.mark.django_db
S = CampaignRecipient.Status
simulator = printer_fixtures.simulator


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


# ---------------------------------------------------------------- the switch against a worker's claim
def claim_for_sending(campaign: Campaign) -> list[int]:
    """A mailing worker claiming the campaign's waiting cards (for the printer it read)."""
    from datetime import timedelta

    from campaigns.claims import recipients_claim
    from common.fsm import Actor

    claim = recipients_claim(
        campaign=campaign, method="start_sending", limit=10, lease=timedelta(minutes=10), actor=Actor("worker")
    )
    return claim.ids


def test_a_claim_between_the_forms_check_and_the_save_refuses_the_switch(printers_on):
    """The form's check finds nothing in flight; a worker then claims the
    waiting cards and starts sending them to the old printer; the save, which
    checks again under the campaign row's lock, refuses the switch."""
    campaign = CampaignFactory(printer="sandbox")
    CampaignRecipientFactory(campaign=campaign, status=S.SENDING_STAGED)  # never tried: not in flight yet
    editing = Campaign.objects.get(pk=campaign.pk)
    editing.printer = "lob"
    editing.full_clean()  # the form's check: nothing at the old printer
    assert claim_for_sending(campaign)  # the worker, between the check and the save
    with pytest.raises(ValidationError) as info:
        editing.save()
    assert "could print them twice" in " ".join(info.value.message_dict["printer"])
    assert Campaign.objects.get(pk=campaign.pk).printer == "sandbox"


def test_other_edits_of_a_campaign_in_flight_still_save():
    campaign = CampaignFactory(printer="sandbox")
    CampaignRecipientFactory(campaign=campaign, status=S.SENDING, first_attempt_at=timezone.now())
    editing = Campaign.objects.get(pk=campaign.pk)
    editing.name = "Spring, renamed"
    editing.save()
    editing.save(update_fields=["paused"])
    assert Campaign.objects.get(pk=campaign.pk).name == "Spring, renamed"


def test_a_run_that_began_before_a_switch_claims_nothing_for_the_old_printer(simulator, printers_on):
    """A mailing run read the campaign (and its printer) before the switch
    committed: its claim reads the printer again under the lock and takes no
    card, so none goes to the old printer; the next run mails them with the
    new one."""
    from campaigns.mailing.service import campaign_mail
    from campaigns.tests.test_mailing_stage import ACTOR, ready_campaign
    from printers.registry import get_printer

    campaign, _rows = ready_campaign(2)
    old_printer = get_printer("sandbox")  # what the run began with
    Campaign.objects.filter(pk=campaign.pk).update(printer="lob")  # the switch, committed meanwhile
    report = campaign_mail(campaign=campaign, actor=ACTOR, printer=old_printer)
    assert report.claimed == 0
    assert report.calls == 0
    assert not simulator.captured("sandbox", "POST")
    assert set(campaign.recipients.values_list("status", flat=True)) == {S.SENDING_STAGED}
    report = campaign_mail(campaign=campaign, actor=ACTOR)
    assert report.claimed == 2
    assert len(simulator.captured("lob", "POST")) == 2
    assert set(campaign.recipients.values_list("status", flat=True)) == {S.SENT}
    assert set(campaign.recipients.values_list("mailpieces__printer", flat=True)) == {"lob"}


def test_the_admin_says_why_when_the_save_refuses_a_switch(admin_client, printers_on, monkeypatch):
    from django.urls import reverse

    campaign = CampaignFactory(printer="sandbox")
    CampaignRecipientFactory(campaign=campaign, status=S.SENDING_STAGED)
    check = Campaign._clean_printer_switch

    def check_then_a_worker_claims(self, *args, **kwargs):
        check(self, *args, **kwargs)
        claim_for_sending(campaign)

    monkeypatch.setattr(Campaign, "_clean_printer_switch", check_then_a_worker_claims)
    url = reverse("admin:campaigns_campaign_change", args=[campaign.pk])
    data = {
        "organization": campaign.organization_id,
        "name": campaign.name,
        "printer": "lob",
        "size": campaign.size,
        "mail_date": "",
        "holdout_percent": "0",
        "proof_template": "",
        "discount_prefix": "",
        "discount_value": "",
    }
    response = admin_client.post(url, data, follow=True)
    assert response.status_code == 200
    said = " | ".join(str(m) for m in response.context["messages"])
    assert "The printer was not changed" in said
    assert "could print them twice" in said
    assert Campaign.objects.get(pk=campaign.pk).printer == "sandbox"


@pytest.mark.django_db(transaction=True)
def test_postgresql_a_claim_waits_for_a_switch_under_way_then_takes_nothing(printers_on):
    """Two connections: the switch holds the campaign row's lock while its
    transaction runs; the claim waits for it, reads the new printer and
    takes no card for the old one (without the lock it took them)."""
    import threading
    import time
    import uuid
    from datetime import timedelta

    from django.db import connection, transaction

    from campaigns.mailing.service import _claim
    from common.fsm import Actor
    from common.testing import race

    if connection.vendor != "postgresql":
        pytest.skip("SQLite runs one write transaction at a time: no second writer to wait for")
    campaign = CampaignFactory(printer="sandbox")
    CampaignRecipientFactory(campaign=campaign, status=S.SENDING_STAGED)
    saved = threading.Event()

    def switch() -> None:
        with transaction.atomic():
            editing = Campaign.objects.get(pk=campaign.pk)
            editing.printer = "lob"
            editing.save()
            saved.set()
            time.sleep(0.5)  # the claim comes while this transaction is still open

    def claim() -> tuple[uuid.UUID, list]:
        saved.wait(10)
        now = timezone.now()
        return _claim(campaign, "sandbox", Actor("worker"), 10, timedelta(minutes=5), now.date(), now)

    _, (_, rows) = race([switch, claim])
    assert rows == []
    assert set(campaign.recipients.values_list("status", flat=True)) == {S.SENDING_STAGED}
    assert Campaign.objects.get(pk=campaign.pk).printer == "lob"
