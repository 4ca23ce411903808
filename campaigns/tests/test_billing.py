"""The billing preflight: the local and Stripe clients, and a service that fails closed."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from campaigns.billing.base import BillingCheck, BillingError, get_billing_client
from campaigns.billing.local import LocalBillingClient
from campaigns.billing.service import organizations_billing_check, preflight_campaign_billing
from campaigns.billing.stripe import StripeBillingClient
from campaigns.billing.stripe_stub import StripeHandler
from campaigns.tests.factories import CampaignFactory, OrganizationFactory
from printers.simulator import Fault, Simulator

pytestmark = pytest.mark.django_db

PRICE = "price_postcard"
KEY = "sk_test_billing_key"
# What ops read when the org has no subscription item: what is wrong, then what to do.
NO_ITEM_LOCAL = (
    "the organization has no subscription item for postcards; add the postcard price (price_postcard) to the "
    "organization's Stripe subscription and enter that item's id (si_…) in its “Billing subscription item id”"
)
NO_ITEM_GONE = (
    "the organization has no subscription item for postcards: Stripe has no subscription item si_gone; add the "
    "postcard price (price_postcard) to the organization's Stripe subscription and enter that item's id (si_…) in "
    "its “Billing subscription item id”"
)


def billable(**overrides: Any) -> Any:
    """An org that both backends call ready once the stub is seeded with ``seed_ready``."""
    fields = {
        "billing_customer_id": "cus_ready",
        "subscription_active": True,
        "billing_subscription_item_id": "si_ready",
        "billing_price_id": PRICE,
    }
    return OrganizationFactory(**{**fields, **overrides})


@pytest.fixture
def sim() -> Iterator[Simulator]:
    simulator = Simulator(handlers={"stripe": StripeHandler}, secrets={"stripe": KEY}).start()
    try:
        yield simulator
    finally:
        simulator.stop()


@pytest.fixture
def stripe(sim: Simulator) -> StripeHandler:
    handler = sim.handlers["stripe"]
    assert isinstance(handler, StripeHandler)
    return handler


def client(sim: Simulator, *, api_key: str = KEY, timeout: float = 2.0) -> StripeBillingClient:
    return StripeBillingClient(api_key, f"{sim.base_url}/stripe", PRICE, timeout=timeout)


# ---------------------------------------------------------------- local backend
@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({}, ""),
        ({"billing_customer_id": ""}, "no billing customer"),
        ({"billing_customer_id": "   "}, "no billing customer"),
        ({"subscription_active": False}, "no active subscription"),
        ({"billing_subscription_item_id": ""}, NO_ITEM_LOCAL),
        (
            {"billing_price_id": "price_old"},
            "postcards cannot be billed at the postcard price: the organization's subscription item is on price "
            "price_old, not price_postcard; put the item on price_postcard in Stripe and enter price_postcard in its "
            "“Billing price id”",
        ),
        (
            {"billing_price_id": ""},
            "postcards cannot be billed at the postcard price: the organization's subscription item has no price; "
            "put the item on price_postcard in Stripe and enter price_postcard in its “Billing price id”",
        ),
        # The first missing piece is the one reported.
        ({"billing_customer_id": "", "subscription_active": False, "billing_price_id": "x"}, "no billing customer"),
        ({"subscription_active": False, "billing_subscription_item_id": ""}, "no active subscription"),
        ({"billing_subscription_item_id": "", "billing_price_id": "x"}, NO_ITEM_LOCAL),
    ],
)
def test_local_client_reads_the_organization_fields_in_order(overrides: dict[str, Any], problem: str) -> None:
    result = LocalBillingClient(PRICE).check(billable(**overrides))
    assert result == BillingCheck(ready=not problem, problem=problem)


def test_local_client_without_a_configured_price_is_a_permanent_settings_error() -> None:
    with pytest.raises(BillingError) as info:
        LocalBillingClient.from_settings({"backend": "local", "price_id": ""})
    assert info.value.permanent is True
    # Shown to ops on every recipient it stops: it names the setting that fixes it.
    assert info.value.message == (
        "the postcard price is not configured (set BILLING_PRICE_ID), so no organization's price can be checked"
    )


def test_settings_choose_the_backend(settings: Any) -> None:
    settings.BILLING = {"backend": "local", "price_id": "price_other"}
    local = get_billing_client()
    assert isinstance(local, LocalBillingClient)
    assert local.price_id == "price_other"
    settings.BILLING = {"backend": "stripe", "price_id": PRICE, "api_key": KEY, "base_url": "http://127.0.0.1:9"}
    assert isinstance(get_billing_client(), StripeBillingClient)


# ---------------------------------------------------------------- Stripe backend: answers
def test_stripe_ready_asks_three_questions_with_the_key(sim: Simulator, stripe: StripeHandler) -> None:
    stripe.seed_ready()
    assert client(sim).check(billable()) == BillingCheck(ready=True)
    calls = sim.captured("stripe")
    assert [c.path for c in calls] == [
        "/v1/customers/cus_ready",
        "/v1/subscriptions",
        "/v1/subscription_items/si_ready",
    ]
    assert {c.method for c in calls} == {"GET"}
    assert {c.headers["authorization"] for c in calls} == {f"Bearer {KEY}"}
    # No status filter: Stripe then lists every subscription that is not canceled.
    assert calls[1].query == {"customer": ["cus_ready"], "limit": ["100"]}


def test_stripe_ignores_the_local_only_fields(sim: Simulator, stripe: StripeHandler) -> None:
    stripe.seed_ready()
    org = billable(subscription_active=False, billing_price_id="price_stale")
    assert client(sim).check(org).ready is True


def test_stripe_without_a_customer_id_asks_nothing(sim: Simulator, stripe: StripeHandler) -> None:
    stripe.seed_ready()
    assert client(sim).check(billable(billing_customer_id="")) == BillingCheck(False, "no billing customer")
    assert sim.captured("stripe") == []


def test_stripe_unknown_customer_is_no_billing_customer(sim: Simulator, stripe: StripeHandler) -> None:
    stripe.seed_ready()
    result = client(sim).check(billable(billing_customer_id="cus_gone"))
    assert result == BillingCheck(False, "no billing customer: Stripe has no customer cus_gone")
    assert len(sim.captured("stripe")) == 1


def test_stripe_deleted_customer_is_no_billing_customer(sim: Simulator, stripe: StripeHandler) -> None:
    stripe.seed_ready()
    stripe.add_customer("cus_ready", deleted=True)
    result = client(sim).check(billable())
    assert result == BillingCheck(False, "no billing customer: the Stripe customer cus_ready was deleted")


def test_stripe_customer_id_cannot_walk_to_another_endpoint(sim: Simulator, stripe: StripeHandler) -> None:
    stripe.seed_ready()
    result = client(sim).check(billable(billing_customer_id="../subscription_items/si_ready"))
    assert result.problem.startswith("no billing customer")
    assert sim.captured("stripe")[0].path == "/v1/customers/..%2Fsubscription_items%2Fsi_ready"


def test_stripe_customer_without_subscriptions(sim: Simulator, stripe: StripeHandler) -> None:
    stripe.seed_ready()
    stripe.subscriptions.clear()
    assert client(sim).check(billable()) == BillingCheck(False, "no active subscription")


def test_stripe_canceled_subscription_is_no_active_subscription(sim: Simulator, stripe: StripeHandler) -> None:
    stripe.seed_ready()
    stripe.add_subscription("sub_ready", customer="cus_ready", status="canceled")
    assert client(sim).check(billable()) == BillingCheck(False, "no active subscription")


def test_another_customers_subscription_does_not_count(sim: Simulator, stripe: StripeHandler) -> None:
    stripe.seed_ready()
    stripe.add_customer("cus_other")
    org = billable(billing_customer_id="cus_other")
    assert client(sim).check(org) == BillingCheck(False, "no active subscription")


@pytest.mark.parametrize(
    ("status", "problem"),
    [
        ("active", ""),
        ("trialing", ""),
        ("past_due", "no active subscription: sub_ready is past due (its last payment failed)"),
        ("unpaid", "no active subscription: sub_ready is unpaid"),
        ("incomplete", "no active subscription: sub_ready is waiting for its first payment"),
        ("paused", "no active subscription: sub_ready is paused"),
    ],
)
def test_only_active_and_trialing_subscriptions_count(
    sim: Simulator, stripe: StripeHandler, status: str, problem: str
) -> None:
    stripe.seed_ready()
    stripe.add_subscription("sub_ready", customer="cus_ready", status=status)
    assert client(sim).check(billable()) == BillingCheck(ready=not problem, problem=problem)


def test_the_active_subscription_may_be_on_a_later_page(sim: Simulator, stripe: StripeHandler) -> None:
    stripe.seed_ready()
    del stripe.subscriptions["sub_ready"]
    for n in range(150):
        stripe.add_subscription(f"sub_{n:03d}", customer="cus_ready", status="past_due")
    stripe.add_subscription("sub_ready", customer="cus_ready")  # the 151st
    assert client(sim).check(billable()).ready is True
    pages = [c.query for c in sim.captured("stripe") if c.path == "/v1/subscriptions"]
    assert pages[1]["starting_after"] == ["sub_099"]


def test_stripe_without_an_item_id(sim: Simulator, stripe: StripeHandler) -> None:
    stripe.seed_ready()
    result = client(sim).check(billable(billing_subscription_item_id=""))
    assert result == BillingCheck(False, NO_ITEM_LOCAL)
    assert len(sim.captured("stripe")) == 2  # the item is never asked for


def test_stripe_unknown_item_is_no_subscription_item(sim: Simulator, stripe: StripeHandler) -> None:
    stripe.seed_ready()
    result = client(sim).check(billable(billing_subscription_item_id="si_gone"))
    assert result == BillingCheck(False, NO_ITEM_GONE)


@pytest.mark.parametrize(
    ("owner", "status"), [("cus_ready", "canceled"), ("cus_ready", "past_due"), ("cus_x", "active")]
)
def test_an_item_outside_the_active_subscriptions_is_no_item(
    sim: Simulator, stripe: StripeHandler, owner: str, status: str
) -> None:
    stripe.seed_ready()
    stripe.add_subscription("sub_old", customer=owner, status=status)
    stripe.add_item("si_old", subscription="sub_old", price=PRICE)
    result = client(sim).check(billable(billing_subscription_item_id="si_old"))
    assert result == BillingCheck(
        False,
        "the organization has no subscription item for postcards: item si_old belongs to subscription sub_old, "
        "which is not an active subscription of customer cus_ready; enter the postcard item of an active "
        "subscription of that customer in its “Billing subscription item id”",
    )


def test_stripe_price_drift(sim: Simulator, stripe: StripeHandler) -> None:
    stripe.seed_ready(price="price_2019")
    result = client(sim).check(billable())
    assert result == BillingCheck(
        False,
        "postcards cannot be billed at the postcard price: the organization's subscription item is on price "
        "price_2019, not price_postcard; put the item on price_postcard in Stripe",
    )


def test_stripe_inactive_price_is_drift(sim: Simulator, stripe: StripeHandler) -> None:
    stripe.seed_ready()
    stripe.add_price(PRICE, active=False)
    result = client(sim).check(billable())
    assert result == BillingCheck(
        False,
        "postcards cannot be billed at the postcard price: the postcard price price_postcard is no longer active in "
        "Stripe; make it active again, or set BILLING_PRICE_ID to the price that replaces it and put the "
        "organization's subscription item on it",
    )


# ---------------------------------------------------------------- Stripe backend: could not ask
@pytest.mark.parametrize("status", [500, 502, 503])
def test_stripe_5xx_is_transient(sim: Simulator, stripe: StripeHandler, status: int) -> None:
    stripe.seed_ready()
    sim.inject("stripe", status)
    with pytest.raises(BillingError, match=rf"Stripe had a temporary error \(HTTP {status}\)") as info:
        client(sim).check(billable())
    assert info.value.permanent is False


def test_stripe_429_is_transient_with_its_wait(sim: Simulator, stripe: StripeHandler) -> None:
    stripe.seed_ready()
    sim.inject("stripe", Fault.status(429, path_contains="/subscriptions"))
    with pytest.raises(BillingError, match="slow down") as info:
        client(sim).check(billable())
    assert (info.value.permanent, info.value.retry_after) == (False, 1.0)


def test_stripe_timeout_is_transient(sim: Simulator, stripe: StripeHandler) -> None:
    stripe.seed_ready()
    sim.inject("stripe", Fault.timeout_after_create(1.5, path_contains="/subscription_items/"))
    with pytest.raises(BillingError, match=r"^Stripe did not answer within 0.3 seconds$") as info:
        client(sim, timeout=0.3).check(billable())
    assert info.value.permanent is False


def test_stripe_unreachable_is_transient() -> None:
    unreachable = StripeBillingClient(KEY, "http://127.0.0.1:9", PRICE, timeout=1)
    with pytest.raises(BillingError, match="could not be reached") as info:
        unreachable.check(billable())
    assert info.value.permanent is False


def test_stripe_wrong_key_is_permanent_and_never_echoed(sim: Simulator, stripe: StripeHandler) -> None:
    stripe.seed_ready()
    with pytest.raises(BillingError, match=r"refused the API key \(HTTP 401\)") as info:
        client(sim, api_key="sk_test_wrong_one").check(billable())
    assert info.value.permanent is True
    assert "sk_test_wrong_one" not in str(info.value)


def test_stripe_restricted_key_403_is_permanent(sim: Simulator, stripe: StripeHandler) -> None:
    stripe.seed_ready()
    sim.inject("stripe", 403)
    with pytest.raises(BillingError, match="HTTP 403") as info:
        client(sim).check(billable())
    assert info.value.permanent is True


def test_a_wrong_base_address_is_not_read_as_a_missing_customer(sim: Simulator, stripe: StripeHandler) -> None:
    """Stripe's base address has no /v1: an unknown URL's 404 is a setup error, not "no customer"."""
    stripe.seed_ready()
    wrong = StripeBillingClient(KEY, sim.url("stripe"), PRICE)  # ends in /v1
    with pytest.raises(BillingError, match="HTTP 404: Unrecognized request URL") as info:
        wrong.check(billable())
    assert info.value.permanent is True


def test_stripe_client_needs_a_key() -> None:
    with pytest.raises(BillingError, match="STRIPE_API_KEY") as info:
        StripeBillingClient.from_settings({"backend": "stripe", "price_id": PRICE, "api_key": ""})
    assert info.value.permanent is True


# ---------------------------------------------------------------- the service fails closed
@pytest.mark.parametrize("fault", [500, 503, 429, 401, Fault.timeout_after_create(1.5)])
def test_preflight_never_raises_when_stripe_cannot_be_asked(sim: Simulator, stripe: StripeHandler, fault: Any) -> None:
    stripe.seed_ready()
    sim.inject("stripe", fault)
    result = preflight_campaign_billing(CampaignFactory(organization=billable()), client=client(sim, timeout=0.3))
    assert result.ready is False
    assert result.problem.startswith("billing could not be checked: Stripe ")


def test_preflight_passes_through_a_clear_answer(sim: Simulator, stripe: StripeHandler) -> None:
    stripe.seed_ready()
    campaign = CampaignFactory(organization=billable(billing_subscription_item_id="si_gone"))
    result = preflight_campaign_billing(campaign, client=client(sim))
    assert result == BillingCheck(False, NO_ITEM_GONE)
    assert preflight_campaign_billing(CampaignFactory(organization=billable()), client=client(sim)).ready is True


def test_preflight_with_a_broken_client_fails_closed(caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        name = "broken"

        def check(self, organization: Any) -> BillingCheck:
            raise KeyError("price")

    with caplog.at_level(logging.ERROR, logger="campaigns.billing.service"):
        result = preflight_campaign_billing(CampaignFactory(organization=billable()), client=Broken())
    assert result == BillingCheck(False, "billing could not be checked: an unexpected error (see the logs)")
    assert "KeyError" in caplog.text


def test_preflight_uses_the_configured_local_backend(settings: Any) -> None:
    settings.BILLING = {"backend": "local", "price_id": PRICE}
    assert preflight_campaign_billing(CampaignFactory(organization=billable())).ready is True
    settings.BILLING = {"backend": "local", "price_id": "price_2025"}
    result = preflight_campaign_billing(CampaignFactory(organization=billable()))
    assert result.problem.startswith(
        "postcards cannot be billed at the postcard price: the organization's subscription item is on price "
        "price_postcard, not price_2025"
    )


@pytest.mark.parametrize(
    ("conf", "problem"),
    [
        ({"backend": "stripe", "price_id": PRICE, "api_key": ""}, "STRIPE_API_KEY"),
        ({"backend": "local", "price_id": ""}, "postcard price is not configured"),
        ({"backend": "paypal"}, "unknown BILLING backend"),
        ({"backend": "stripe", "price_id": PRICE, "api_key": KEY, "timeout_s": "soon"}, "settings could not be read"),
    ],
)
def test_preflight_with_broken_settings_fails_closed(settings: Any, conf: dict[str, Any], problem: str) -> None:
    settings.BILLING = conf
    result = preflight_campaign_billing(CampaignFactory(organization=billable()))
    assert result.ready is False
    assert result.problem.startswith("billing could not be checked: ")
    assert problem in result.problem


def test_preflight_logs_ids_not_names_or_keys(
    sim: Simulator, stripe: StripeHandler, caplog: pytest.LogCaptureFixture
) -> None:
    sim.inject("stripe", 503)
    org = billable(name="Springfield Nuclear Power Plant")
    with caplog.at_level(logging.DEBUG, logger="campaigns.billing"):
        preflight_campaign_billing(CampaignFactory(organization=org), client=client(sim))
        preflight_campaign_billing(CampaignFactory(organization=org), client=client(sim))
    assert f"org {org.pk}" in caplog.text
    assert "Springfield" not in caplog.text
    assert KEY not in caplog.text


# ---------------------------------------------------------------- many campaigns, one check per org
class CountingClient:
    name = "counting"

    def __init__(self) -> None:
        self.checked: list[int] = []

    def check(self, organization: Any) -> BillingCheck:
        self.checked.append(organization.pk)
        if organization.pk == self.failing:
            raise BillingError("Stripe had a temporary error (HTTP 503)")
        return BillingCheck(ready=True)

    failing: int | None = None


def test_each_org_is_checked_once_and_every_id_gets_an_answer() -> None:
    first, second, third = billable(), billable(), billable()
    counting = CountingClient()
    counting.failing = third.pk
    ids = [first.pk, second.pk, first.pk, first.pk, second.pk, third.pk, 999_999]
    results = organizations_billing_check(ids, client=counting)
    assert sorted(counting.checked) == sorted([first.pk, second.pk, third.pk])
    assert results == {
        first.pk: BillingCheck(ready=True),
        second.pk: BillingCheck(ready=True),
        third.pk: BillingCheck(False, "billing could not be checked: Stripe had a temporary error (HTTP 503)"),
        999_999: BillingCheck(False, "the organization no longer exists"),
    }
    assert organizations_billing_check([], client=counting) == {}


def test_many_campaigns_of_one_org_ask_stripe_once_per_org(sim: Simulator, stripe: StripeHandler) -> None:
    stripe.seed_ready()
    ready, lapsed = billable(), billable(billing_customer_id="cus_lapsed")
    stripe.add_customer("cus_lapsed")
    campaigns = [CampaignFactory(organization=ready) for _ in range(5)] + [
        CampaignFactory(organization=lapsed) for _ in range(5)
    ]
    results = organizations_billing_check([c.organization_id for c in campaigns], client=client(sim))
    assert results == {ready.pk: BillingCheck(ready=True), lapsed.pk: BillingCheck(False, "no active subscription")}
    assert len(sim.captured("stripe", "GET")) == 3 + 2  # ready: three questions; lapsed: two


def test_broken_settings_answer_every_org(settings: Any) -> None:
    settings.BILLING = {"backend": "stripe", "price_id": PRICE, "api_key": ""}
    first, second = billable(), billable()
    results = organizations_billing_check([first.pk, second.pk])
    assert set(results) == {first.pk, second.pk}
    assert all(not r.ready and "STRIPE_API_KEY" in r.problem for r in results.values())


# ---------------------------------------------------------------- what ops read in the log
class Scripted:
    """A billing backend that gives one answer, or raises it."""

    name = "scripted"

    def __init__(self, answer: BillingCheck | Exception) -> None:
        self.answer = answer

    def check(self, organization: Any) -> BillingCheck:
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def test_every_answer_is_logged_with_the_org_the_backend_and_the_reason(caplog: pytest.LogCaptureFixture) -> None:
    campaign = CampaignFactory(organization=billable())
    org = campaign.organization_id
    cases: list[tuple[BillingCheck | Exception, int, str]] = [
        (BillingCheck(ready=True), logging.DEBUG, f"billing: org {org} is ready (scripted)"),
        (
            BillingCheck(False, "no active subscription"),
            logging.WARNING,
            f"billing: org {org} is not ready (scripted): no active subscription",
        ),
        (
            BillingError("Stripe had a temporary error (HTTP 503)"),
            logging.WARNING,
            f"billing: org {org} could not be checked (transient): Stripe had a temporary error (HTTP 503)",
        ),
        (
            BillingError("Stripe refused the API key (HTTP 401)", permanent=True),
            logging.WARNING,
            f"billing: org {org} could not be checked (permanent): Stripe refused the API key (HTTP 401)",
        ),
        (KeyError("price"), logging.ERROR, f"billing: the scripted check of org {org} failed unexpectedly"),
    ]
    for answer, level, message in cases:
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger="campaigns.billing.service"):
            preflight_campaign_billing(campaign, client=Scripted(answer))
        assert [(r.levelno, r.getMessage()) for r in caplog.records] == [(level, message)], answer


def test_unreadable_billing_settings_are_logged_as_permanent_for_every_org(
    settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings.BILLING = {"backend": "stripe", "price_id": PRICE, "api_key": KEY, "timeout_s": "soon"}
    first, second = billable(), billable()
    why = "the billing settings could not be read (ValueError)"
    with caplog.at_level(logging.DEBUG, logger="campaigns.billing.service"):
        preflight_campaign_billing(CampaignFactory(organization=first))
        organizations_billing_check([second.pk])
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.ERROR, "billing: the billing settings could not be read"),
        (logging.WARNING, f"billing: org {first.pk} could not be checked (permanent): {why}"),
        (logging.ERROR, "billing: the billing settings could not be read"),
        (logging.WARNING, f"billing: org {second.pk} could not be checked (permanent): {why}"),
    ]
