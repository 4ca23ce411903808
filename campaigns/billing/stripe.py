"""The Stripe billing backend: asks Stripe's REST API, read-only.

Three GETs, each through the one outbound seam (``common.http``) with a
timeout and the secret key as a bearer token:

1. ``GET /v1/customers/{id}``: a 404 or ``"deleted": true`` is no customer.
2. ``GET /v1/subscriptions?customer={id}&limit=100`` (following ``has_more``):
   without a ``status`` filter Stripe lists every subscription that is not
   canceled, so one call both finds the usable ones and tells ops *why* the
   others are not (past due, unpaid, …).  Only ``active`` and ``trialing``
   count (see :data:`ACTIVE_STATUSES`).
3. ``GET /v1/subscription_items/{item}``: a 404 is no item; an item of a
   subscription that is not one of this customer's usable ones is no item
   either (it would bill someone else, or nobody).  Its ``price`` must be
   the postcard price and still active, or that is price drift.

``check`` answers a :class:`BillingCheck`; it raises :class:`BillingError`
only when Stripe could not be asked: network errors, timeouts, 429 and 5xx
are transient, 401/403 and other refusals permanent.  Messages are plain
words for ops and never contain the key.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from campaigns.billing.base import BillingCheck, BillingError
from campaigns.billing.local import (
    ITEM_FIELD,
    NO_CUSTOMER,
    NO_ITEM,
    NO_SUBSCRIPTION,
    PRICE_DRIFT,
    add_item,
    expected_price_id,
    price_drift,
)
from common import http as outbound

if TYPE_CHECKING:
    from campaigns.models import Organization

log = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)

DEFAULT_BASE_URL = "https://api.stripe.com"
DEFAULT_TIMEOUT_S = 10.0
PAGE_SIZE = 100  # Stripe's maximum list page
MAX_PAGES = 10  # 1,000 live subscriptions for one customer is already a data problem
# Subscriptions in good standing.  ``past_due`` is left out on purpose: the
# last invoice failed and Stripe is still retrying it, so a postcard printed
# now may never be paid for; billing fails closed until the payment clears.
ACTIVE_STATUSES = frozenset({"active", "trialing"})
# Plain words for ops, for the statuses that do not count.
STATUS_WORDS = {
    "past_due": "past due (its last payment failed)",
    "unpaid": "unpaid",
    "incomplete": "waiting for its first payment",
    "incomplete_expired": "expired before its first payment",
    "paused": "paused",
    "canceled": "canceled",
}


# ---------------------------------------------------------------------- Stripe's objects (only what we read)
class _StripeObject(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str


class StripeCustomer(_StripeObject):
    deleted: bool = False


class StripePrice(_StripeObject):
    active: bool = True


class StripeSubscription(_StripeObject):
    status: str


class StripeSubscriptionList(BaseModel):
    model_config = ConfigDict(extra="ignore")

    data: list[StripeSubscription]
    has_more: bool = False


class StripeSubscriptionItem(_StripeObject):
    subscription: str
    price: StripePrice | None = None

    @field_validator("subscription", mode="before")
    @classmethod
    def _subscription_id(cls, value: Any) -> Any:
        # An id, or the whole subscription when the caller expanded it.
        return value.get("id") if isinstance(value, dict) else value


# ---------------------------------------------------------------------- the client
class StripeBillingClient:
    name = "stripe"

    def __init__(self, api_key: str, base_url: str, price_id: str, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        if not api_key:
            raise BillingError("Stripe billing needs a secret API key: set STRIPE_API_KEY", permanent=True)
        if not price_id:
            raise BillingError("the postcard price is not configured (set BILLING_PRICE_ID)", permanent=True)
        self.base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        self.price_id = price_id
        self.timeout = timeout
        self._headers = {"Authorization": f"Bearer {api_key}"}

    @classmethod
    def from_settings(cls, conf: Mapping[str, Any]) -> StripeBillingClient:
        return cls(
            api_key=str(conf.get("api_key") or "").strip(),
            price_id=expected_price_id(conf),
            base_url=str(conf.get("base_url") or DEFAULT_BASE_URL),
            timeout=float(conf.get("timeout_s") or DEFAULT_TIMEOUT_S),
        )

    def check(self, organization: Organization) -> BillingCheck:
        customer_id = organization.billing_customer_id.strip()
        if not customer_id:
            return BillingCheck(ready=False, problem=NO_CUSTOMER)
        customer = self._customer(customer_id)
        if customer is None:
            return BillingCheck(ready=False, problem=f"{NO_CUSTOMER}: Stripe has no customer {customer_id}")
        if customer.deleted:
            return BillingCheck(ready=False, problem=f"{NO_CUSTOMER}: the Stripe customer {customer_id} was deleted")

        subscriptions = self._subscriptions(customer_id)
        usable = {s.id for s in subscriptions if s.status in ACTIVE_STATUSES}
        if not usable:
            return BillingCheck(ready=False, problem=_no_subscription(subscriptions))

        item_id = organization.billing_subscription_item_id.strip()
        if not item_id:
            return BillingCheck(ready=False, problem=f"{NO_ITEM}; {add_item(self.price_id)}")
        item = self._item(item_id)
        if item is None:
            return BillingCheck(
                ready=False,
                problem=f"{NO_ITEM}: Stripe has no subscription item {item_id}; {add_item(self.price_id)}",
            )
        if item.subscription not in usable:
            return BillingCheck(
                ready=False,
                problem=f"{NO_ITEM}: item {item_id} belongs to subscription {item.subscription}, "
                f"which is not an active subscription of customer {customer_id}; enter the postcard item of an "
                f"active subscription of that customer in its {ITEM_FIELD}",
            )

        price = item.price
        if price is None or price.id != self.price_id:
            return price_drift(price.id if price else "", self.price_id)
        if not price.active:
            return price_drift_inactive(price.id)
        return BillingCheck(ready=True)

    # ------------------------------------------------------------------ the three lookups
    def _customer(self, customer_id: str) -> StripeCustomer | None:
        response = self._get(f"/v1/customers/{quote(customer_id, safe='')}")
        return None if _missing(response) else _parse(StripeCustomer, self._ok(response))

    def _subscriptions(self, customer_id: str) -> list[StripeSubscription]:
        found: list[StripeSubscription] = []
        params: dict[str, Any] = {"customer": customer_id, "limit": PAGE_SIZE}
        for _ in range(MAX_PAGES):
            page = _parse(StripeSubscriptionList, self._ok(self._get("/v1/subscriptions", params=params)))
            found.extend(page.data)
            if not page.has_more or not page.data:
                break
            params = {**params, "starting_after": page.data[-1].id}
        else:
            log.warning("billing: customer %s has more than %d pages of subscriptions", customer_id, MAX_PAGES)
        return found

    def _item(self, item_id: str) -> StripeSubscriptionItem | None:
        response = self._get(f"/v1/subscription_items/{quote(item_id, safe='')}")
        return None if _missing(response) else _parse(StripeSubscriptionItem, self._ok(response))

    # ------------------------------------------------------------------ HTTP
    def _get(self, path: str, params: Mapping[str, Any] | None = None) -> httpx.Response:
        try:
            return outbound.request(
                "GET",
                f"{self.base_url}{path}",
                params=params,
                headers=self._headers,
                timeout=self.timeout,
                error=BillingError,
                service="Stripe",
            )
        except BillingError as exc:
            log.warning("billing: Stripe call failed: %s", exc.message)  # the URL holds ids only, never the key
            raise _plain(exc, self.timeout) from exc

    def _ok(self, response: httpx.Response) -> Any:
        """The JSON of a 2xx answer; a plain-worded error for any other."""
        status = response.status_code
        if 200 <= status < 300:
            try:
                return response.json()
            except ValueError:
                raise BillingError(f"Stripe answered HTTP {status} with a body that is not JSON") from None
        message, _code = outbound.error_message(response)
        retry_after = outbound.retry_after_seconds(response.headers)
        if status == 401:
            text, permanent = "Stripe refused the API key (HTTP 401)", True
        elif status == 403:
            text, permanent = "the Stripe API key may not read customers and subscriptions (HTTP 403)", True
        elif status == 429:
            text, permanent = "Stripe asked us to slow down (HTTP 429)", False
        elif status >= 500 or status == 408:
            text, permanent = f"Stripe had a temporary error (HTTP {status})", False
        else:
            text, permanent = f"Stripe rejected the request (HTTP {status}: {message[:200]})", True
        raise BillingError(text, permanent=permanent, status_code=status, retry_after=retry_after)


def _missing(response: httpx.Response) -> bool:
    """Stripe's "no such object": a 404 whose error code is ``resource_missing``.

    A 404 without it is an unknown URL (a base address with a stray path),
    a configuration error that must not read as "the org has no customer"."""
    return response.status_code == 404 and outbound.error_message(response)[1] == "resource_missing"


def price_drift_inactive(price_id: str) -> BillingCheck:
    # The postcard price itself was archived: the fix is Stripe's and the
    # server's setting, not the organization's.
    return BillingCheck(
        ready=False,
        problem=f"{PRICE_DRIFT}: the postcard price {price_id} is no longer active in Stripe; make it active again, "
        "or set BILLING_PRICE_ID to the price that replaces it and put the organization's subscription item on it",
    )


def _no_subscription(subscriptions: list[StripeSubscription]) -> str:
    """ "no active subscription", with what the customer has instead when anything."""
    if not subscriptions:
        return NO_SUBSCRIPTION
    states = ", ".join(f"{s.id} is {STATUS_WORDS.get(s.status, s.status.replace('_', ' '))}" for s in subscriptions)
    return f"{NO_SUBSCRIPTION}: {states}"


def _parse(model: type[M], payload: Any) -> M:
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        # A proxy's page or a changed API shape: maybe gone on the next try.
        raise BillingError(
            f"Stripe answered with a {model.__name__.removeprefix('Stripe').lower()} we could not read "
            f"({exc.error_count()} problem(s))"
        ) from None


def _plain(exc: BillingError, timeout: float) -> BillingError:
    """The seam's error reworded for ops (no URL, no exception class names),
    keeping its permanence."""
    if exc.permanent:
        text = "the Stripe connection is misconfigured (its address or API key is not usable)"
    elif isinstance(exc.__cause__, httpx.TimeoutException):
        text = f"Stripe did not answer within {timeout:g} seconds"
    else:
        text = "Stripe could not be reached (network error)"
    return BillingError(text, permanent=exc.permanent, status_code=exc.status_code, retry_after=exc.retry_after)
