from __future__ import annotations

import math
from decimal import Decimal

import pytest

from campaigns.holdout import holdout_bucket, holdout_draw, holdout_threshold
from campaigns.models import CampaignRecipient
from campaigns.qualification import campaign_qualify
from campaigns.sync import recipients_sync
from campaigns.tests.factories import CampaignFactory
from common.fsm import Actor

ACTOR = Actor("test")


def test_the_draw_is_a_pure_function_of_seed_and_key() -> None:
    assert holdout_bucket(seed="s", natural_key="k") == holdout_bucket(seed="s", natural_key="k")
    keys = [f"key-{i}" for i in range(200)]
    split_a = [holdout_draw(seed="a", natural_key=k, percent=50) for k in keys]
    split_b = [holdout_draw(seed="b", natural_key=k, percent=50) for k in keys]
    assert split_a == [holdout_draw(seed="a", natural_key=k, percent=Decimal("50.00")) for k in keys]
    assert split_a != split_b  # another campaign seed gives another split


def test_the_threshold_is_in_basis_points_and_clamped() -> None:
    assert [holdout_threshold(p) for p in (Decimal("0"), Decimal("12.34"), 10, Decimal("100"), 150)] == [
        0,
        1234,
        1000,
        10000,
        10000,
    ]


def test_zero_percent_holds_out_nobody_and_hundred_everybody() -> None:
    keys = [f"k{i}" for i in range(500)]
    assert not any(holdout_draw(seed="s", natural_key=k, percent=0) for k in keys)
    assert all(holdout_draw(seed="s", natural_key=k, percent=100) for k in keys)


@pytest.mark.parametrize("percent", [Decimal("10"), Decimal("2.5"), Decimal("50")])
def test_the_achieved_share_is_within_sampling_error_of_the_target(percent: Decimal) -> None:
    n = 20_000
    p = float(percent) / 100
    held = sum(holdout_draw(seed="campaign-seed", natural_key=f"{i:064x}", percent=percent) for i in range(n))
    # Four standard errors of a binomial: fails about once in 15,000 runs.
    assert abs(held - n * p) <= 4 * math.sqrt(n * p * (1 - p))


@pytest.mark.django_db
def test_re_importing_into_a_campaign_with_the_same_seed_reproduces_the_split() -> None:
    rows = [
        {"first_name": f"P{i}", "last_name": "Q", "address1": f"{i} Oak Rd", "zip": "10001", "country": "US"}
        for i in range(60)
    ]
    splits = []
    for _ in range(2):
        campaign = CampaignFactory(holdout_percent=Decimal("30"))
        CampaignFactory._meta.model.objects.filter(pk=campaign.pk).update(holdout_seed="audit-seed")
        campaign.refresh_from_db()
        recipients_sync(campaign=campaign, rows=rows, actor=ACTOR)
        campaign_qualify(campaign=campaign, actor=ACTOR)
        splits.append(
            set(
                campaign.recipients.filter(status=CampaignRecipient.Status.HOLDOUT).values_list(
                    "natural_key", flat=True
                )
            )
        )
    assert splits[0] == splits[1]
    assert 0 < len(splits[0]) < 60
