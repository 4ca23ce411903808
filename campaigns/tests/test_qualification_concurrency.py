"""The recipient cap holds when qualifications run at the same time.

Real threads with their own connections on a real database (transactional_db):
on SQLite the IMMEDIATE transactions serialize the writers, on PostgreSQL the
org's row lock does.  Both runs decide their first rows, then meet at a
barrier, so each has read whatever it reads before staging before the other
one stages: a cap counted outside the staging transaction is exceeded.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from campaigns import qualification
from campaigns.models import CampaignRecipient
from campaigns.qualification import campaign_qualify
from campaigns.tests.factories import CampaignFactory, CampaignRecipientFactory, OrganizationFactory
from common.fsm import Actor
from common.testing import race

Status = CampaignRecipient.Status


def _race(monkeypatch: pytest.MonkeyPatch, runs: list[Callable[[], Any]]) -> None:
    """``race`` the runs, which meet again once each has made its first decision."""
    meet = threading.Barrier(len(runs))
    met: set[int] = set()
    decide = qualification._decide

    def decide_then_meet(*args: Any) -> Any:
        decision = decide(*args)
        me = threading.get_ident()
        if me not in met:  # once per thread, after its first decision
            met.add(me)
            meet.wait(timeout=30)
        return decision

    monkeypatch.setattr(qualification, "_decide", decide_then_meet)
    race(runs, timeout=60)


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_qualifications_never_stage_more_than_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    campaign = CampaignFactory(organization=OrganizationFactory(recipient_cap=2), holdout_percent=0)
    rows = CampaignRecipientFactory.create_batch(8, campaign=campaign)
    halves = [r.pk for r in rows[:4]], [r.pk for r in rows[4:]]
    actor = Actor("test")
    _race(
        monkeypatch,
        [
            lambda ids=ids: campaign_qualify(campaign=campaign, actor=actor, batch_size=2, only_ids=ids)
            for ids in halves
        ],
    )
    statuses = list(CampaignRecipient.objects.filter(campaign=campaign).values_list("status", "skip_reason"))
    assert statuses.count((Status.PROOFING_STAGED, "")) == 2
    assert statuses.count((Status.SKIPPED, "CapExceeded")) == 6


@pytest.mark.django_db(transaction=True)
def test_concurrent_runs_over_the_same_rows_stage_each_row_once_within_the_cap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    campaign = CampaignFactory(organization=OrganizationFactory(recipient_cap=5), holdout_percent=0)
    CampaignRecipientFactory.create_batch(12, campaign=campaign)
    actor = Actor("test")
    _race(monkeypatch, [lambda: campaign_qualify(campaign=campaign, actor=actor, batch_size=3) for _ in range(3)])
    rows = CampaignRecipient.objects.filter(campaign=campaign)
    assert rows.filter(status=Status.PROOFING_STAGED).count() == 5
    assert rows.filter(status=Status.SKIPPED, skip_reason="CapExceeded").count() == 7
    # Every row moved once and was logged once.
    assert all(r.transitions.count() == 1 for r in rows)
