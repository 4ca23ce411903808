"""Claims: two workers never hold the same recipient, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import uuid
from functools import partial

import pytest
from django.utils import timezone

from campaigns.claims import recipient_claim_holds, recipients_claim
from campaigns.models import CampaignRecipient, RecipientTransition
from campaigns.tests.factories import CampaignFactory, CampaignRecipientFactory
from common.fsm import Actor
from common.testing import race

S = CampaignRecipient.Status
LEASE = dt.timedelta(minutes=5)


@pytest.mark.django_db
def test_it_claims_the_lowest_staged_ids_with_a_token_a_lease_and_history() -> None:
    campaign = CampaignFactory()
    rows = CampaignRecipientFactory.create_batch(5, campaign=campaign, status=S.SENDING_STAGED)
    other = CampaignRecipientFactory(status=S.SENDING_STAGED)  # another campaign: never claimed here
    CampaignRecipientFactory(campaign=campaign, status=S.PROOFED)  # not staged for sending
    now = timezone.now()

    claim = recipients_claim(campaign=campaign, method="start_sending", limit=3, lease=LEASE, actor=Actor("t"), now=now)

    assert claim.ids == sorted(r.pk for r in rows)[:3]
    held = CampaignRecipient.objects.filter(pk__in=claim.ids)
    assert {(r.status, r.claim_token, r.lease_until) for r in held} == {(S.SENDING, claim.token, now + LEASE)}
    assert CampaignRecipient.objects.filter(campaign=campaign, status=S.SENDING_STAGED).count() == 2
    assert CampaignRecipient.objects.get(pk=other.pk).status == S.SENDING_STAGED
    logged = RecipientTransition.objects.filter(recipient_id__in=claim.ids)
    assert sorted(logged.values_list("recipient_id", flat=True)) == claim.ids
    assert {(t.from_status, t.to_status, t.payload["claim_token"]) for t in logged} == {
        (S.SENDING_STAGED, S.SENDING, str(claim.token))
    }


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("method", "staged", "working"),
    [("start_proofing", S.PROOFING_STAGED, S.PROOFING), ("start_enriching", S.ADDRESS_ENRICHABLE, S.ADDRESS_ENRICHING)],
)
def test_every_stage_claims_from_its_own_staged_state(method, staged, working) -> None:
    campaign = CampaignFactory()
    CampaignRecipientFactory.create_batch(2, campaign=campaign, status=staged)
    CampaignRecipientFactory(campaign=campaign, status=S.SENDING_STAGED)

    claim = recipients_claim(campaign=campaign, method=method, limit=10, lease=LEASE, actor=Actor("t"))

    assert len(claim) == 2
    assert set(CampaignRecipient.objects.filter(pk__in=claim.ids).values_list("status", flat=True)) == {working}


@pytest.mark.django_db
def test_it_refuses_a_method_that_is_not_a_claim_and_an_empty_batch() -> None:
    campaign = CampaignFactory()
    with pytest.raises(ValueError, match="not a claim transition"):
        recipients_claim(campaign=campaign, method="mark_sent", limit=1, lease=LEASE, actor=Actor("t"))
    with pytest.raises(ValueError, match="at least 1"):
        recipients_claim(campaign=campaign, method="start_sending", limit=0, lease=LEASE, actor=Actor("t"))


@pytest.mark.django_db
def test_a_claim_holds_only_for_its_token_and_until_its_lease_ends() -> None:
    campaign = CampaignFactory()
    CampaignRecipientFactory(campaign=campaign, status=S.SENDING_STAGED)
    now = timezone.now()
    claim = recipients_claim(campaign=campaign, method="start_sending", limit=1, lease=LEASE, actor=Actor("t"), now=now)
    pk = claim.ids[0]

    assert recipient_claim_holds(recipient_id=pk, token=claim.token, now=now) is True
    assert recipient_claim_holds(recipient_id=pk, token=uuid.uuid4(), now=now) is False
    assert recipient_claim_holds(recipient_id=pk, token=claim.token, now=now + LEASE) is False


@pytest.mark.django_db(transaction=True)
def test_racing_workers_never_hold_the_same_recipient() -> None:
    campaign = CampaignFactory()
    CampaignRecipientFactory.create_batch(120, campaign=campaign, status=S.SENDING_STAGED)

    def worker(name: str) -> list[int]:
        mine: list[int] = []
        while True:
            claim = recipients_claim(campaign=campaign, method="start_sending", limit=7, lease=LEASE, actor=Actor(name))
            if not claim.ids and not CampaignRecipient.objects.filter(status=S.SENDING_STAGED).exists():
                return mine
            mine.extend(claim.ids)
            tokens = set(CampaignRecipient.objects.filter(pk__in=claim.ids).values_list("claim_token", flat=True))
            assert tokens <= {claim.token}

    held = race([partial(worker, f"worker-{i}") for i in range(3)])

    every = [pk for ids in held for pk in ids]
    assert len(every) == 120
    assert len(set(every)) == 120
    assert RecipientTransition.objects.filter(to_status=S.SENDING).count() == 120


@pytest.mark.django_db(transaction=True)
def test_a_claim_takes_the_next_rows_while_another_worker_holds_the_first_ones():
    """PostgreSQL: rows another worker is claiming are skipped before the
    LIMIT, so the second worker gets the next batch instead of nothing."""
    import threading

    from django.db import connection, connections, transaction

    if not connection.features.has_select_for_update_skip_locked:
        pytest.skip("SQLite serialises claimers with its write lock: nothing to skip")
    campaign = CampaignFactory()
    rows = CampaignRecipientFactory.create_batch(6, campaign=campaign, status=CampaignRecipient.Status.PROOFING_STAGED)
    first = sorted(r.pk for r in rows)[:3]
    locked, release = threading.Event(), threading.Event()

    def other_worker() -> None:
        try:
            with transaction.atomic():
                list(CampaignRecipient.objects.select_for_update().filter(pk__in=first).values_list("pk", flat=True))
                locked.set()
                release.wait(10)
        finally:
            connections.close_all()

    holder = threading.Thread(target=other_worker)
    holder.start()
    try:
        assert locked.wait(10)
        claim = recipients_claim(
            campaign=campaign, method="start_proofing", limit=3, lease=dt.timedelta(minutes=5), actor=Actor("t")
        )
    finally:
        release.set()
        holder.join()
    assert claim.ids == sorted(r.pk for r in rows)[3:]
