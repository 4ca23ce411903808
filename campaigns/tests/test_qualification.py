from __future__ import annotations

from decimal import Decimal
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel

from campaigns.models import CampaignRecipient, RecipientTransition
from campaigns.qualification import campaign_qualify
from campaigns.tests.factories import (
    BlocklistEntryFactory,
    CampaignFactory,
    CampaignRecipientFactory,
    OrganizationFactory,
)
from campaigns.validation import blocklist_entry_key
from common.fsm import Actor
from printers.base import Printer
from printers.intelliprint.approval import IntelliprintRecipientApproval
from printers.lob.approval import LobRecipientApproval

pytestmark = pytest.mark.django_db
ACTOR = Actor("test")
Status = CampaignRecipient.Status


class FakeLob(Printer):
    kind = "lob"
    approval_model: ClassVar[type[BaseModel]] = LobRecipientApproval
    countries = frozenset({"US"})


class FakeIntelliprint(Printer):
    kind = "intelliprint"
    approval_model: ClassVar[type[BaseModel]] = IntelliprintRecipientApproval
    countries = frozenset({"GB"})


@pytest.fixture
def printers(monkeypatch: pytest.MonkeyPatch) -> None:
    table: dict[str, Any] = {"lob": FakeLob, "intelliprint": FakeIntelliprint}
    monkeypatch.setattr("campaigns.qualification.campaign_printer_class", lambda c: table.get(c.printer))


def status_of(recipient: CampaignRecipient) -> tuple[str, str]:
    recipient.refresh_from_db()
    return recipient.status, recipient.skip_reason


def test_it_stages_a_plain_valid_recipient_with_a_history_row() -> None:
    r = CampaignRecipientFactory()
    result = campaign_qualify(campaign=r.campaign, actor=ACTOR)
    assert status_of(r) == (Status.PROOFING_STAGED, "")
    assert result.as_dict() == {"ProofingStaged": 1}
    log = RecipientTransition.objects.get(recipient=r)
    assert (log.from_status, log.to_status, log.reason) == ("Pending", "ProofingStaged", "qualification")


def test_it_blacklists_a_recipient_whose_address_is_on_the_org_blocklist() -> None:
    campaign = CampaignFactory()
    blocked = CampaignRecipientFactory(campaign=campaign, address1="1 Blocked Way", zip="62701", country="US")
    kept = CampaignRecipientFactory(campaign=campaign)
    # The factory's entry has an arbitrary key: matching recomputes keys from the fields.
    BlocklistEntryFactory(organization=campaign.organization, address1="1 blocked way.", zip="62701-0001")
    campaign_qualify(campaign=campaign, actor=ACTOR)
    assert status_of(blocked) == (Status.BLACKLISTED, "")
    assert status_of(kept)[0] == Status.PROOFING_STAGED


def test_it_blacklists_by_email_and_by_address_variant() -> None:
    campaign = CampaignFactory()
    by_email = CampaignRecipientFactory(campaign=campaign, email="No.Mail@Example.com")
    by_key = CampaignRecipientFactory(campaign=campaign, address1="9 Elm Street", zip="10001", country="US")
    BlocklistEntryFactory(organization=campaign.organization, address1="", email="no.mail@example.com")
    entry = BlocklistEntryFactory(organization=campaign.organization, address1="9 elm st", zip="10001")
    assert entry.key == blocklist_entry_key(address1="9 Elm Street", zip="10001", country="US")
    campaign_qualify(campaign=campaign, actor=ACTOR)
    assert status_of(by_email)[0] == Status.BLACKLISTED
    assert status_of(by_key)[0] == Status.BLACKLISTED


def test_another_orgs_blocklist_does_not_apply() -> None:
    r = CampaignRecipientFactory(address1="1 Blocked Way", zip="62701")
    BlocklistEntryFactory(address1="1 Blocked Way", zip="62701")  # other org, same address
    campaign_qualify(campaign=r.campaign, actor=ACTOR)
    assert status_of(r)[0] == Status.PROOFING_STAGED


def test_no_address_goes_to_enrichment_when_the_campaign_has_it_on() -> None:
    r = CampaignRecipientFactory(campaign=CampaignFactory(address_enrichment=True), address1="")
    campaign_qualify(campaign=r.campaign, actor=ACTOR)
    assert status_of(r) == (Status.ADDRESS_ENRICHABLE, "")


def test_no_address_is_skipped_no_address_when_enrichment_is_off() -> None:
    r = CampaignRecipientFactory(address1=" ")
    campaign_qualify(campaign=r.campaign, actor=ACTOR)
    assert status_of(r) == (Status.SKIPPED, "NoAddress")


def test_lob_rules_skip_with_printer_approval_failed_and_keep_the_errors(printers: None) -> None:
    campaign = CampaignFactory(printer="lob")
    bad = CampaignRecipientFactory(campaign=campaign, zip="ABC", json={"extra": {"k": "v"}})
    good = CampaignRecipientFactory(campaign=campaign)
    campaign_qualify(campaign=campaign, actor=ACTOR)
    assert status_of(bad) == (Status.SKIPPED, "PrinterApprovalFailed")
    assert [e["type"] for e in bad.json["approval_errors"]] == ["lob_zip"]
    assert bad.json["extra"] == {"k": "v"}
    assert status_of(good)[0] == Status.PROOFING_STAGED


def test_intelliprint_rules_reject_a_us_address(printers: None) -> None:
    campaign = CampaignFactory(printer="intelliprint")
    us = CampaignRecipientFactory(campaign=campaign)
    uk = CampaignRecipientFactory(campaign=campaign, zip="SW1A 1AA", country="GB", state="")
    campaign_qualify(campaign=campaign, actor=ACTOR)
    assert status_of(us) == (Status.SKIPPED, "PrinterApprovalFailed")
    assert {e["type"] for e in us.json["approval_errors"]} == {"intelliprint_postcode", "intelliprint_country"}
    assert status_of(uk)[0] == Status.PROOFING_STAGED


def test_recipients_beyond_the_cap_are_skipped_lowest_ids_first() -> None:
    org = OrganizationFactory(recipient_cap=3)
    campaign = CampaignFactory(organization=org)
    CampaignRecipientFactory(campaign=campaign)  # qualifies now: uses one slot
    campaign_qualify(campaign=campaign, actor=ACTOR)
    later = [CampaignRecipientFactory(campaign=campaign) for _ in range(4)]
    result = campaign_qualify(campaign=campaign, actor=ACTOR, batch_size=3)
    assert [status_of(r) for r in later] == [
        (Status.PROOFING_STAGED, ""),
        (Status.PROOFING_STAGED, ""),
        (Status.SKIPPED, "CapExceeded"),
        (Status.SKIPPED, "CapExceeded"),
    ]
    assert result.as_dict() == {"ProofingStaged": 2, "Skipped:CapExceeded": 2}


def test_held_out_skipped_and_blacklisted_recipients_do_not_use_the_cap() -> None:
    org = OrganizationFactory(recipient_cap=1)
    campaign = CampaignFactory(organization=org)
    CampaignRecipientFactory(campaign=campaign, status=Status.SKIPPED)
    CampaignRecipientFactory(campaign=campaign, status=Status.HOLDOUT)
    CampaignRecipientFactory(campaign=campaign, address1="")  # skipped NoAddress in this run
    r = CampaignRecipientFactory(campaign=campaign)
    campaign_qualify(campaign=campaign, actor=ACTOR)
    assert status_of(r)[0] == Status.PROOFING_STAGED


def test_holdout_takes_its_share_and_the_rest_is_staged() -> None:
    campaign = CampaignFactory(holdout_percent=Decimal("50"))
    recipients = CampaignRecipientFactory.create_batch(40, campaign=campaign)
    result = campaign_qualify(campaign=campaign, actor=ACTOR)
    statuses = [status_of(r)[0] for r in recipients]
    assert set(statuses) == {Status.HOLDOUT, Status.PROOFING_STAGED}
    assert result.moved["Holdout"] + result.moved["ProofingStaged"] == 40


def test_only_pending_recipients_are_touched_and_a_second_run_is_a_no_op() -> None:
    campaign = CampaignFactory()
    done = CampaignRecipientFactory(campaign=campaign, status=Status.SKIPPED, skip_reason="NoAddress")
    CampaignRecipientFactory(campaign=campaign)
    campaign_qualify(campaign=campaign, actor=ACTOR)
    assert campaign_qualify(campaign=campaign, actor=ACTOR).as_dict() == {}
    assert status_of(done) == (Status.SKIPPED, "NoAddress")


def test_a_dry_run_decides_everything_and_writes_nothing() -> None:
    campaign = CampaignFactory(holdout_percent=Decimal("100"))
    r = CampaignRecipientFactory(campaign=campaign)
    result = campaign_qualify(campaign=campaign, actor=ACTOR, dry_run=True, keep_decisions=True)
    assert result.as_dict() == {"Holdout": 1}
    assert result.decisions is not None
    assert result.decisions[r.pk].method == "hold_out"
    assert status_of(r)[0] == Status.PENDING
    assert not RecipientTransition.objects.filter(recipient=r).exists()


def test_the_registered_lob_printer_rules_apply_without_fakes() -> None:
    campaign = CampaignFactory(printer="lob")
    bad = CampaignRecipientFactory(campaign=campaign, state="Illinois")
    good = CampaignRecipientFactory(campaign=campaign)
    campaign_qualify(campaign=campaign, actor=ACTOR)
    assert status_of(bad) == (Status.SKIPPED, "PrinterApprovalFailed")
    assert bad.json["approval_errors"][0]["type"] == "lob_state"
    assert status_of(good)[0] == Status.PROOFING_STAGED


def test_a_cap_slot_is_not_lost_when_a_row_moves_away_mid_run(monkeypatch: pytest.MonkeyPatch) -> None:
    from campaigns import qualification
    from campaigns.services import recipients_bulk_transition

    org = OrganizationFactory(recipient_cap=2)
    campaign = CampaignFactory(organization=org, holdout_percent=0)
    first, second, third = CampaignRecipientFactory.create_batch(3, campaign=campaign)
    batches = list(qualification._pending_batches(campaign, 2))  # read before the row moves
    recipients_bulk_transition(queryset=CampaignRecipient.objects.filter(pk=first.pk), method="archive", actor=ACTOR)
    monkeypatch.setattr(qualification, "_pending_batches", lambda campaign, batch_size, only_ids=None: iter(batches))

    campaign_qualify(campaign=campaign, actor=ACTOR, batch_size=2)

    assert status_of(first)[0] == Status.ARCHIVED
    assert status_of(second)[0] == Status.PROOFING_STAGED
    assert status_of(third)[0] == Status.PROOFING_STAGED  # the slot first could not use


def test_only_the_given_pending_recipients_are_qualified() -> None:
    campaign = CampaignFactory()
    chosen, other = CampaignRecipientFactory.create_batch(2, campaign=campaign)
    done = CampaignRecipientFactory(campaign=campaign, status=Status.HOLDOUT)
    result = campaign_qualify(campaign=campaign, actor=ACTOR, only_ids=[chosen.pk, done.pk], batch_size=1)
    assert result.as_dict() == {"ProofingStaged": 1}
    assert [status_of(r)[0] for r in (chosen, other, done)] == [Status.PROOFING_STAGED, Status.PENDING, Status.HOLDOUT]


def test_it_runs_inside_a_callers_transaction_and_rolls_back_with_it() -> None:
    from django.db import transaction

    org = OrganizationFactory(recipient_cap=1)
    r = CampaignRecipientFactory(campaign=CampaignFactory(organization=org))
    with transaction.atomic():
        assert campaign_qualify(campaign=r.campaign, actor=ACTOR).as_dict() == {"ProofingStaged": 1}
        transaction.set_rollback(True)
    assert status_of(r)[0] == Status.PENDING
    assert not RecipientTransition.objects.filter(recipient=r).exists()
