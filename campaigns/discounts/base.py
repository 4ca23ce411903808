"""The discount-code client interface, the code a recipient gets, and the
backend switch.

A recipient's code is *derived* (:func:`discount_code_for`), not drawn at
random: the code is its own idempotency key.  A worker that crashed after the
shop created the code and before our commit computes the same code on the
retry, and ``mint`` finds it instead of creating a second one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import TYPE_CHECKING, Protocol

from django.conf import settings

from common.http import OutboundError

if TYPE_CHECKING:
    from campaigns.models import Campaign

CODE_CHARS = 10  # base32 characters of the derived part: 50 bits


class DiscountError(OutboundError):
    """The code could not be minted.  ``permanent`` False: try again later
    (network, 429, 5xx); True: configuration or a definitive refusal."""


def discount_code_for(campaign: Campaign, recipient_id: int) -> str:
    """The code recipient ``recipient_id`` of ``campaign`` gets: the campaign's
    prefix and an HMAC of (campaign, recipient), upper-case letters and 2-7."""
    secret = str((getattr(settings, "DISCOUNTS", None) or {}).get("code_secret") or settings.SECRET_KEY)
    digest = hmac.new(secret.encode(), f"{campaign.pk}:{recipient_id}".encode(), hashlib.sha256).digest()
    derived = base64.b32encode(digest).decode()[:CODE_CHARS]
    prefix = "".join(c for c in (campaign.discount_prefix or "").upper() if c.isascii() and c.isalnum())
    return f"{prefix}-{derived}" if prefix else derived


class DiscountClient(Protocol):
    name: str

    def mint(self, *, campaign: Campaign, recipient_id: int, code: str) -> str:
        """Make sure ``code`` exists in the shop for this campaign's discount,
        creating it if needed, and return it.  Idempotent: a second call with
        the same code finds the first one's code and creates nothing."""
        ...


def get_discount_client() -> DiscountClient:
    conf = dict(getattr(settings, "DISCOUNTS", None) or {})
    backend = conf.get("backend") or "local"
    if backend == "local":
        from campaigns.discounts.local import LocalDiscountClient

        return LocalDiscountClient()
    if backend == "shopify":
        from campaigns.discounts.shopify import ShopifyDiscountClient

        return ShopifyDiscountClient.from_settings(conf)
    raise DiscountError(f"unknown DISCOUNTS backend {backend!r}: use 'local' or 'shopify'", permanent=True)
