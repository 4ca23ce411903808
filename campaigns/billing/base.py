"""The billing client interface, its answer, and the backend switch.

A client answers one question for an organization: is there a usable billing
path?  The spec's ``preflight_campaign_billing`` (``campaigns.billing.service``)
asks it before a stage spends money (a proof render, a discount code, a
printed card) and fails closed on any answer but "ready".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from django.conf import settings

from common.http import OutboundError

if TYPE_CHECKING:
    from campaigns.models import Organization


@dataclass(frozen=True)
class BillingCheck:
    """``ready``, or ``problem`` in plain words for ops (never a secret):
    "no billing customer", "no active subscription", "the organization has
    no subscription item for postcards; …", "postcards cannot be billed at
    the postcard price: …", "billing could not be checked: …"."""

    ready: bool
    problem: str = ""


class BillingError(OutboundError):
    """The billing service could not be asked (network, 5xx, credentials)."""


class BillingClient(Protocol):
    name: str

    def check(self, organization: Organization) -> BillingCheck: ...


def get_billing_client() -> BillingClient:
    conf = dict(getattr(settings, "BILLING", None) or {})
    backend = conf.get("backend") or "local"
    if backend == "local":
        from campaigns.billing.local import LocalBillingClient

        return LocalBillingClient.from_settings(conf)
    if backend == "stripe":
        from campaigns.billing.stripe import StripeBillingClient

        return StripeBillingClient.from_settings(conf)
    raise BillingError(f"unknown BILLING backend {backend!r}: use 'local' or 'stripe'", permanent=True)
