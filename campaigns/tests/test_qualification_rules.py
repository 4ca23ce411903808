"""Qualification's rules at their edges: every outcome of one run (status, skip
reason, counts, history, stored approval errors), the blocklist's keys, the
holdout boundary, and the dry run's decisions (batches: the _batches module)."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from campaigns.holdout import holdout_bucket
from campaigns.models import BlocklistEntry, Campaign, CampaignRecipient, RecipientTransition
from campaigns.qualification import Decision, campaign_qualify
from campaigns.recipient_json import APPROVAL_ERRORS
from campaigns.tests.factories import (
    BlocklistEntryFactory,
    CampaignFactory,
    CampaignRecipientFactory,
    OrganizationFactory,
)
from campaigns.tests.helpers import outcome
from common.fsm import Actor

pytestmark = pytest.mark.django_db
ACTOR = Actor("test")
Status = CampaignRecipient.Status


def history(recipient: CampaignRecipient) -> list[tuple[str, str, str]]:
    rows = RecipientTransition.objects.filter(recipient=recipient).order_by("id")
    return [(h.from_status, h.to_status, h.reason) for h in rows]


def test_one_run_sends_each_recipient_to_its_rule_with_counts_and_history() -> None:
    org = OrganizationFactory(recipient_cap=1)
    campaign = CampaignFactory(organization=org, printer="lob")
    BlocklistEntryFactory(organization=org, address1="", email="blocked@example.com")
    blocked = CampaignRecipientFactory(campaign=campaign, email="blocked@example.com")
    no_address = CampaignRecipientFactory(campaign=campaign, address1="", json={"extra": {"a": "1"}})
    unapprovable = CampaignRecipientFactory(campaign=campaign, state="Illinois")
    staged = CampaignRecipientFactory(campaign=campaign)
    over_cap = CampaignRecipientFactory(campaign=campaign)

    result = campaign_qualify(campaign=campaign, actor=ACTOR)

    assert result.as_dict() == {
        "Blacklisted": 1,
        "ProofingStaged": 1,
        "Skipped:CapExceeded": 1,
        "Skipped:NoAddress": 1,
        "Skipped:PrinterApprovalFailed": 1,
    }
    assert result.decisions is None  # only kept when asked for
    assert [outcome(r) for r in (blocked, no_address, unapprovable, staged, over_cap)] == [
        (Status.BLACKLISTED, ""),
        (Status.SKIPPED, "NoAddress"),
        (Status.SKIPPED, "PrinterApprovalFailed"),
        (Status.PROOFING_STAGED, ""),
        (Status.SKIPPED, "CapExceeded"),
    ]
    assert history(blocked) == [("Pending", "Blacklisted", "qualification")]
    assert history(no_address) == [("Pending", "Skipped", "qualification: NoAddress")]
    assert history(unapprovable) == [("Pending", "Skipped", "qualification: PrinterApprovalFailed")]
    assert history(staged) == [("Pending", "ProofingStaged", "qualification")]
    assert history(over_cap) == [("Pending", "Skipped", "qualification: CapExceeded")]
    # Only the printer's refusal stores approval errors; other skips keep their json as it was.
    assert no_address.json == {"extra": {"a": "1"}}
    assert over_cap.json == {}
    assert [e["type"] for e in unapprovable.json[APPROVAL_ERRORS]] == ["lob_state"]


def test_enrichable_and_held_out_recipients_are_counted_with_history() -> None:
    campaign = CampaignFactory(address_enrichment=True, holdout_percent=Decimal("100"))
    enrichable = CampaignRecipientFactory(campaign=campaign, address1="")
    held_out = CampaignRecipientFactory(campaign=campaign)
    result = campaign_qualify(campaign=campaign, actor=ACTOR)
    assert result.as_dict() == {"AddressEnrichable": 1, "Holdout": 1}
    assert history(enrichable) == [("Pending", "AddressEnrichable", "qualification")]
    assert history(held_out) == [("Pending", "Holdout", "qualification")]


def test_each_refused_recipient_keeps_its_own_approval_errors() -> None:
    campaign = CampaignFactory(printer="lob")
    bad_state = CampaignRecipientFactory(campaign=campaign, state="Illinois")
    bad_zip = CampaignRecipientFactory(campaign=campaign, zip="ABC")
    campaign_qualify(campaign=campaign, actor=ACTOR, batch_size=5)
    bad_state.refresh_from_db()
    bad_zip.refresh_from_db()
    assert [e["type"] for e in bad_state.json[APPROVAL_ERRORS]] == ["lob_state"]
    assert [e["type"] for e in bad_zip.json[APPROVAL_ERRORS]] == ["lob_zip"]


def test_an_entry_with_an_email_and_an_address_blocks_both() -> None:
    # The stored key is the email's only: the address key is recomputed from
    # the entry's fields, country included (a British address is not an American one).
    campaign = CampaignFactory()
    entry = BlocklistEntryFactory(
        organization=campaign.organization,
        address1="5 Oak Ave",
        zip="SW1A 1AA",
        country="GB",
        email="x@example.com",
    )
    at_address = CampaignRecipientFactory(
        campaign=campaign, address1="5 Oak Avenue", zip="SW1A1AA", country="GB", state="", email=""
    )
    by_email = CampaignRecipientFactory(campaign=campaign, email="X@example.com")
    elsewhere = CampaignRecipientFactory(campaign=campaign, email="")
    assert entry.key
    campaign_qualify(campaign=campaign, actor=ACTOR)
    assert [outcome(r)[0] for r in (at_address, by_email, elsewhere)] == [
        Status.BLACKLISTED,
        Status.BLACKLISTED,
        Status.PROOFING_STAGED,
    ]


def test_an_entry_with_a_stale_key_still_blocks_by_its_fields() -> None:
    campaign = CampaignFactory()
    org = campaign.organization
    by_address = BlocklistEntryFactory(organization=org, address1="7 Pine Rd")
    by_email = BlocklistEntryFactory(organization=org, address1="", email="old@example.com")
    # Written around save(), as a hand-made SQL fix would: the stored keys no longer match.
    BlocklistEntry.objects.filter(pk=by_address.pk).update(key="")
    BlocklistEntry.objects.filter(pk=by_email.pk).update(key="stale")
    at_address = CampaignRecipientFactory(campaign=campaign, address1="7 Pine Road")
    with_email = CampaignRecipientFactory(campaign=campaign, email="old@example.com")
    campaign_qualify(campaign=campaign, actor=ACTOR)
    assert outcome(at_address)[0] == Status.BLACKLISTED
    assert outcome(with_email)[0] == Status.BLACKLISTED


def test_an_entry_known_only_by_its_key_still_blocks() -> None:
    campaign = CampaignFactory()
    entry = BlocklistEntryFactory(organization=campaign.organization, address1="8 Birch Ln")
    BlocklistEntry.objects.filter(pk=entry.pk).update(address1="", zip="", country="")
    at_address = CampaignRecipientFactory(campaign=campaign, address1="8 Birch Lane")
    other = CampaignRecipientFactory(campaign=campaign)
    campaign_qualify(campaign=campaign, actor=ACTOR)
    assert outcome(at_address)[0] == Status.BLACKLISTED
    assert outcome(other)[0] == Status.PROOFING_STAGED


def test_without_a_printer_module_only_the_generic_rules_apply(monkeypatch: pytest.MonkeyPatch) -> None:
    # campaign_printer_class answers None while the printer's module is not installed.
    monkeypatch.setattr("campaigns.qualification.campaign_printer_class", lambda campaign: None)
    campaign = CampaignFactory(printer="lob")
    r = CampaignRecipientFactory(campaign=campaign, state="Illinois")  # Lob would refuse it
    assert campaign_qualify(campaign=campaign, actor=ACTOR).as_dict() == {"ProofingStaged": 1}
    assert outcome(r) == (Status.PROOFING_STAGED, "")


def test_a_recipient_without_an_email_is_matched_by_address_only() -> None:
    campaign = CampaignFactory()
    BlocklistEntryFactory(organization=campaign.organization, address1="", email="someone@example.com")
    r = CampaignRecipientFactory(campaign=campaign, email="")
    campaign_qualify(campaign=campaign, actor=ACTOR)
    assert outcome(r)[0] == Status.PROOFING_STAGED


def test_the_holdout_boundary_is_the_campaigns_own_draw_to_the_basis_point() -> None:
    # Two campaigns share a seed, so one natural key draws the same bucket in both.
    seed = str(uuid.uuid4())
    key = next(f"k{n}" for n in range(100) if 0 < holdout_bucket(seed=seed, natural_key=f"k{n}") < 9999)
    bucket = holdout_bucket(seed=seed, natural_key=key)
    at_bucket = CampaignFactory(holdout_percent=Decimal(bucket) / 100)
    above = CampaignFactory(holdout_percent=Decimal(bucket + 1) / 100)
    Campaign.objects.filter(pk__in=[at_bucket.pk, above.pk]).update(holdout_seed=seed)
    mailed = CampaignRecipientFactory(campaign=at_bucket, natural_key=key)
    held = CampaignRecipientFactory(campaign=above, natural_key=key)
    for campaign in (at_bucket, above):
        campaign.refresh_from_db()
        campaign_qualify(campaign=campaign, actor=ACTOR)
    assert outcome(mailed)[0] == Status.PROOFING_STAGED  # bucket == threshold: not below it
    assert outcome(held)[0] == Status.HOLDOUT


def test_a_dry_run_keeps_every_decision_and_rolls_every_write_back() -> None:
    org = OrganizationFactory(recipient_cap=1)
    campaign = CampaignFactory(organization=org, printer="lob")
    BlocklistEntryFactory(organization=org, address1="", email="blocked@example.com")
    blocked = CampaignRecipientFactory(campaign=campaign, email="blocked@example.com")
    no_address = CampaignRecipientFactory(campaign=campaign, address1="")
    unapprovable = CampaignRecipientFactory(campaign=campaign, state="Illinois")
    staged, over_cap = CampaignRecipientFactory.create_batch(2, campaign=campaign)

    result = campaign_qualify(campaign=campaign, actor=ACTOR, dry_run=True, keep_decisions=True)

    assert result.decisions is not None
    refused = result.decisions.pop(unapprovable.pk)
    assert (refused.method, refused.skip_reason) == ("skip", "PrinterApprovalFailed")
    assert [e["type"] for e in refused.approval_errors or []] == ["lob_state"]
    assert result.decisions == {
        blocked.pk: Decision("blacklist"),
        no_address.pk: Decision("skip", "NoAddress"),
        staged.pk: Decision("stage_proofing"),
        over_cap.pk: Decision("skip", "CapExceeded"),
    }
    assert len(result.as_dict()) == 5
    for r in (blocked, no_address, unapprovable, staged, over_cap):
        assert outcome(r) == (Status.PENDING, "")
        assert history(r) == []
    assert APPROVAL_ERRORS not in unapprovable.json


def test_a_dry_run_where_nobody_is_mailable_still_keeps_the_decisions() -> None:
    campaign = CampaignFactory(holdout_percent=Decimal("100"))
    r = CampaignRecipientFactory(campaign=campaign)
    result = campaign_qualify(campaign=campaign, actor=ACTOR, dry_run=True, keep_decisions=True)
    assert result.decisions == {r.pk: Decision("hold_out")}
