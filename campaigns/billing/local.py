"""The local billing backend: the Organization's own fields are the truth.

Used in development, the demo and tests, and by deployments that manage
billing by hand in the admin.  It asks the same four questions as the Stripe
client, in the same order, so an org reads the same in both backends:
a billing customer, an active subscription, the legacy subscription item, and
that item's price being the postcard price (no price drift).

The problem phrases below are shared with the Stripe client; a Stripe answer
may add a detail after ": " (which customer, which status), so code that
sorts problems matches on the phrase with ``startswith``.  The phrases are
for the ops person who reads them on the organization's page and on each
recipient stopped: what is wrong, then (after "; ") what to do about it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from campaigns.billing.base import BillingCheck, BillingError

if TYPE_CHECKING:
    from campaigns.models import Organization

NO_CUSTOMER = "no billing customer"
NO_SUBSCRIPTION = "no active subscription"
# The spec's "legacy SubscriptionItem" and "price drift", in words.
NO_ITEM = "the organization has no subscription item for postcards"
PRICE_DRIFT = "postcards cannot be billed at the postcard price"
ITEM_FIELD = "“Billing subscription item id”"
PRICE_FIELD = "“Billing price id”"


def add_item(price_id: str) -> str:
    """What to do about a missing subscription item."""
    return (
        f"add the postcard price ({price_id}) to the organization's Stripe subscription and enter that item's id "
        f"(si_…) in its {ITEM_FIELD}"
    )


def expected_price_id(conf: Mapping[str, Any]) -> str:
    """The postcard price from the billing settings; a permanent error when unset.

    Without it every org would read as on the wrong price, which hides the real cause."""
    price_id = str(conf.get("price_id") or "").strip()
    if not price_id:
        raise BillingError(
            "the postcard price is not configured (set BILLING_PRICE_ID), so no organization's price can be checked",
            permanent=True,
        )
    return price_id


def price_drift(item_price_id: str, expected: str, *, local: bool = False) -> BillingCheck:
    """The drift answer in plain words, for an item on the wrong price (or
    none); ``local``: the organization's own price field is what was read,
    so the fix includes it."""
    on = f"is on price {item_price_id}, not {expected}" if item_price_id else "has no price"
    fix = f"put the item on {expected} in Stripe" + (f" and enter {expected} in its {PRICE_FIELD}" if local else "")
    return BillingCheck(ready=False, problem=f"{PRICE_DRIFT}: the organization's subscription item {on}; {fix}")


class LocalBillingClient:
    """Reads ``billing_customer_id``, ``subscription_active``,
    ``billing_subscription_item_id`` and ``billing_price_id``; never calls out."""

    name = "local"

    def __init__(self, price_id: str) -> None:
        self.price_id = price_id

    @classmethod
    def from_settings(cls, conf: Mapping[str, Any]) -> LocalBillingClient:
        return cls(price_id=expected_price_id(conf))

    def check(self, organization: Organization) -> BillingCheck:
        if not organization.billing_customer_id.strip():
            return BillingCheck(ready=False, problem=NO_CUSTOMER)
        if not organization.subscription_active:
            return BillingCheck(ready=False, problem=NO_SUBSCRIPTION)
        if not organization.billing_subscription_item_id.strip():
            return BillingCheck(ready=False, problem=f"{NO_ITEM}; {add_item(self.price_id)}")
        price = organization.billing_price_id.strip()
        if price != self.price_id:
            return price_drift(price, self.price_id, local=True)
        return BillingCheck(ready=True)
