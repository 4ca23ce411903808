"""Qualification in batches: the cap across batches and per campaign, a
failure midway keeping the batches done, id order whatever the index,
``only_ids`` in chunks, and the batch size's floor."""

from __future__ import annotations

from typing import Any

import pytest

from campaigns.models import CampaignRecipient
from campaigns.qualification import Decision, campaign_qualify
from campaigns.tests.factories import CampaignFactory, CampaignRecipientFactory, OrganizationFactory
from campaigns.tests.helpers import outcome
from common.fsm import Actor

pytestmark = pytest.mark.django_db
ACTOR = Actor("test")
Status = CampaignRecipient.Status


def test_small_batches_count_every_move_and_keep_the_cap_across_batches() -> None:
    org = OrganizationFactory(recipient_cap=3)
    campaign = CampaignFactory(organization=org)
    recipients = CampaignRecipientFactory.create_batch(5, campaign=campaign)
    CampaignRecipientFactory.create_batch(2, campaign=campaign, address1="")
    result = campaign_qualify(campaign=campaign, actor=ACTOR, batch_size=2)
    assert result.as_dict() == {"ProofingStaged": 3, "Skipped:CapExceeded": 2, "Skipped:NoAddress": 2}
    assert [outcome(r)[0] for r in recipients] == [Status.PROOFING_STAGED] * 3 + [Status.SKIPPED] * 2


def test_the_cap_counts_this_campaigns_recipients_only() -> None:
    org = OrganizationFactory(recipient_cap=1)
    earlier = CampaignRecipientFactory(campaign=CampaignFactory(organization=org), status=Status.SENT)
    r = CampaignRecipientFactory(campaign=CampaignFactory(organization=org))
    campaign_qualify(campaign=r.campaign, actor=ACTOR)
    assert outcome(r)[0] == Status.PROOFING_STAGED
    assert outcome(earlier)[0] == Status.SENT


@pytest.mark.parametrize("some_ids", [False, True], ids=["all", "only_ids"])
def test_a_failure_in_a_later_batch_keeps_the_batches_already_done(
    monkeypatch: pytest.MonkeyPatch, some_ids: bool
) -> None:
    # Each batch commits on its own, so a run that breaks off can be resumed.
    class Breaking:
        @staticmethod
        def approval_errors(data: dict[str, Any]) -> list[dict[str, Any]]:
            if data["last_name"] == "Breaks":
                raise RuntimeError("approval service down")
            return []

    monkeypatch.setattr("campaigns.qualification.campaign_printer_class", lambda campaign: Breaking)
    campaign = CampaignFactory()
    recipients = CampaignRecipientFactory.create_batch(3, campaign=campaign)
    recipients.append(CampaignRecipientFactory(campaign=campaign, last_name="Breaks"))
    ids = [r.pk for r in recipients] if some_ids else None
    with pytest.raises(RuntimeError):
        campaign_qualify(campaign=campaign, actor=ACTOR, batch_size=2, only_ids=ids)
    # The second batch (the third row and the breaking one) moved nothing.
    assert [outcome(r)[0] for r in recipients] == [Status.PROOFING_STAGED] * 2 + [Status.PENDING] * 2


def test_without_a_cap_every_batch_is_staged_and_counted() -> None:
    campaign = CampaignFactory()
    recipients = CampaignRecipientFactory.create_batch(5, campaign=campaign)
    result = campaign_qualify(campaign=campaign, actor=ACTOR, batch_size=2)
    assert result.as_dict() == {"ProofingStaged": 5}
    assert {outcome(r)[0] for r in recipients} == {Status.PROOFING_STAGED}


def test_small_batches_qualify_everyone_whatever_order_the_natural_keys_sort_in() -> None:
    # The database may walk the (campaign, natural key) index: batches must
    # still follow the ids, or a batch would step over lower ids.
    campaign = CampaignFactory()
    recipients = [CampaignRecipientFactory(campaign=campaign, natural_key=key) for key in ("d", "c", "b", "a")]
    result = campaign_qualify(campaign=campaign, actor=ACTOR, batch_size=2)
    assert result.as_dict() == {"ProofingStaged": 4}
    assert {outcome(r)[0] for r in recipients} == {Status.PROOFING_STAGED}


def test_the_first_recipient_ever_stored_is_qualified() -> None:
    # Ids start at 1: the batches must begin below the lowest id there can be.
    r = CampaignRecipientFactory(id=1)
    assert campaign_qualify(campaign=r.campaign, actor=ACTOR).as_dict() == {"ProofingStaged": 1}
    assert outcome(r)[0] == Status.PROOFING_STAGED


def test_only_ids_are_qualified_in_chunks_of_the_batch_size() -> None:
    campaign = CampaignFactory()
    done = CampaignRecipientFactory(campaign=campaign, status=Status.HOLDOUT)
    chosen = CampaignRecipientFactory.create_batch(3, campaign=campaign)
    left = CampaignRecipientFactory(campaign=campaign)
    # The first chunk holds no Pending row; the ids come unsorted and repeated.
    ids = [chosen[2].pk, done.pk, chosen[0].pk, chosen[1].pk, chosen[0].pk, 10**9]
    result = campaign_qualify(campaign=campaign, actor=ACTOR, only_ids=ids, batch_size=1)
    assert result.as_dict() == {"ProofingStaged": 3}
    assert {outcome(r)[0] for r in chosen} == {Status.PROOFING_STAGED}
    assert outcome(left)[0] == Status.PENDING
    assert outcome(done)[0] == Status.HOLDOUT


def test_a_dry_run_of_some_ids_decides_those_only() -> None:
    campaign = CampaignFactory()
    chosen, other = CampaignRecipientFactory.create_batch(2, campaign=campaign)
    result = campaign_qualify(campaign=campaign, actor=ACTOR, dry_run=True, keep_decisions=True, only_ids=[chosen.pk])
    assert result.decisions == {chosen.pk: Decision("stage_proofing")}
    assert [outcome(r)[0] for r in (chosen, other)] == [Status.PENDING, Status.PENDING]


def test_a_real_run_keeps_the_decisions_when_asked() -> None:
    campaign = CampaignFactory()
    r = CampaignRecipientFactory(campaign=campaign, address1="")
    result = campaign_qualify(campaign=campaign, actor=ACTOR, keep_decisions=True)
    assert result.decisions == {r.pk: Decision("skip", "NoAddress")}
    assert outcome(r) == (Status.SKIPPED, "NoAddress")


def test_an_empty_only_ids_qualifies_nobody() -> None:
    r = CampaignRecipientFactory()
    assert campaign_qualify(campaign=r.campaign, actor=ACTOR, only_ids=[]).as_dict() == {}
    assert outcome(r)[0] == Status.PENDING


def test_a_batch_size_below_one_is_refused() -> None:
    r = CampaignRecipientFactory()
    with pytest.raises(ValueError, match=r"^batch_size must be at least 1, not 0$"):
        campaign_qualify(campaign=r.campaign, actor=ACTOR, batch_size=0)
    assert outcome(r)[0] == Status.PENDING
