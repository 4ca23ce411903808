"""Shopify discount codes through the Admin REST API (price rule + discount code).

A campaign's discount is one *price rule* (the value, once per customer, one
use per code); each recipient's code is a *discount code* under it.  The rule
is created on the campaign's first code and its id kept in
``Campaign.discount_price_rule_id``.

Idempotency comes from the derived code (``discount_code_for``): creating a
code that already exists answers 422 "must be unique", and the lookup endpoint
then says which price rule holds it.  Ours: the earlier attempt created it (a
crash before our commit) and the code is returned.  Another rule's: the code
is somebody else's and is never handed out (a permanent error).

All HTTP goes through ``common.http``; nothing is retried inside a call.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

import httpx
from django.utils import timezone

from campaigns.discounts.base import DiscountError
from campaigns.discounts.service import DiscountValue, parse_discount_value
from campaigns.models import Campaign
from common import http as outbound

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 10.0
DEFAULT_API_VERSION = "2025-01"
SERVICE = "Shopify"
TITLE_MAX = 255
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
# The lookup's Location: .../admin/api/<version>/price_rules/<rule>/discount_codes/<code>[.json]
_LOCATION = re.compile(r"/price_rules/(?P<rule>\d+)/discount_codes/(?P<code>\d+)")


class ShopifyDiscountClient:
    name = "shopify"

    def __init__(
        self,
        *,
        shop_url: str,
        access_token: str,
        api_version: str = DEFAULT_API_VERSION,
        timeout: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        if not shop_url or not access_token:
            raise DiscountError(
                "Shopify discount codes need the shop's address and an Admin API access token; "
                "one of them is not configured.",
                permanent=True,
            )
        if "://" not in shop_url:  # "my-shop.myshopify.com" as the admin shows it
            shop_url = f"https://{shop_url}"
        self.api = f"{shop_url.rstrip('/')}/admin/api/{api_version or DEFAULT_API_VERSION}"
        self.headers = {
            "X-Shopify-Access-Token": access_token,
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        self.timeout = timeout

    @classmethod
    def from_settings(cls, conf: Mapping[str, Any]) -> ShopifyDiscountClient:
        return cls(
            shop_url=str(conf.get("shop_url") or ""),
            access_token=str(conf.get("access_token") or ""),
            api_version=str(conf.get("api_version") or DEFAULT_API_VERSION),
            timeout=float(conf.get("timeout_s") or DEFAULT_TIMEOUT_S),
        )

    # ------------------------------------------------------------------ the protocol
    def mint(self, *, campaign: Campaign, recipient_id: int, code: str) -> str:
        value = parse_discount_value(campaign.discount_value)
        rule_id = self.price_rule_for(campaign, value)
        response = self._send(
            "POST", f"/price_rules/{rule_id}/discount_codes.json", json={"discount_code": {"code": code}}
        )
        if response.status_code in (200, 201):
            return code
        if response.status_code == 422 and _is_duplicate_code(response):
            self._confirm_ours(code, rule_id)
            return code
        if response.status_code == 404:
            raise DiscountError(
                f"Shopify no longer has campaign {campaign.pk}'s discount (price rule {rule_id}; was it deleted in "
                "the shop?): no code can be made for this campaign.",
                permanent=True,
                status_code=404,
            )
        raise _error(response, f"creating discount code {code}")

    # ------------------------------------------------------------------ the price rule
    def price_rule_for(self, campaign: Campaign, value: DiscountValue) -> str:
        """The campaign's price rule id, created on first use.

        Stored with a conditional UPDATE (only while empty), so of two workers
        creating it at once exactly one id is kept; the loser uses the
        winner's and deletes its own rule, which has no code yet.  A crash
        between the creation and the UPDATE leaves an empty rule in the shop:
        harmless (a rule without codes discounts nothing), its title names
        the campaign so it can be found and deleted."""
        if campaign.discount_price_rule_id:
            return campaign.discount_price_rule_id
        stored = _stored_rule(campaign)  # the object may predate another worker's rule
        if stored:
            campaign.discount_price_rule_id = stored
            return stored
        created = self._create_price_rule(campaign, value)
        won = Campaign.objects.filter(pk=campaign.pk, discount_price_rule_id="").update(discount_price_rule_id=created)
        if won:
            campaign.discount_price_rule_id = created
            return created
        winner = _stored_rule(campaign)
        if not winner:
            raise DiscountError(f"campaign {campaign.pk} no longer exists; no discount code made", permanent=True)
        self._delete_price_rule(created)
        campaign.discount_price_rule_id = winner
        return winner

    def _create_price_rule(self, campaign: Campaign, value: DiscountValue) -> str:
        rule = {
            "title": f"Postcard campaign {campaign.pk}: {campaign.name}"[:TITLE_MAX],
            "target_type": "line_item",
            "target_selection": "all",
            "allocation_method": "across",
            "value_type": value.value_type,
            "value": value.value,
            "customer_selection": "all",
            "once_per_customer": True,
            "usage_limit": 1,  # per discount code (Shopify's REST semantics): each recipient's code works once
            "starts_at": timezone.now().replace(microsecond=0).isoformat(),
        }
        response = self._send("POST", "/price_rules.json", json={"price_rule": rule})
        if response.status_code not in (200, 201):
            raise _error(response, f"creating the discount of campaign {campaign.pk}")
        try:
            rule_id = response.json()["price_rule"]["id"]
        except (ValueError, KeyError, TypeError):
            raise DiscountError("Shopify created the discount but its answer had no id; will try again") from None
        return str(rule_id)

    def _delete_price_rule(self, rule_id: str) -> None:
        """Best effort: a rule left behind has no codes and discounts nothing."""
        try:
            response = self._send("DELETE", f"/price_rules/{rule_id}.json")
        except DiscountError as exc:
            log.warning("unused Shopify price rule %s not deleted: %s", rule_id, exc.message)
            return
        if response.status_code not in (200, 204, 404):
            log.warning("unused Shopify price rule %s not deleted: HTTP %s", rule_id, response.status_code)

    # ------------------------------------------------------------------ an existing code
    def _confirm_ours(self, code: str, rule_id: str) -> None:
        """Return when ``code`` exists under price rule ``rule_id``; raise otherwise.

        The lookup answers 303 See Other with the code's address; the rule id is
        read from it rather than following it (``common.http`` never follows a
        redirect, so the token never goes to an address the answer chose)."""
        response = self._send("GET", "/discount_codes/lookup.json", params={"code": code})
        status = response.status_code
        if status in _REDIRECTS:
            found = _LOCATION.search(response.headers.get("location", ""))
            if found is None:
                raise DiscountError(
                    f"Shopify's lookup of discount code {code} pointed to an address we cannot read; will try again",
                    status_code=status,
                )
            holder = found["rule"]
        elif status == 200:  # a client or proxy that followed the redirect
            try:
                holder = str(response.json()["discount_code"]["price_rule_id"])
            except (ValueError, KeyError, TypeError):
                raise DiscountError(
                    f"Shopify's lookup of discount code {code} was unreadable; will try again"
                ) from None
        elif status == 404:
            # It "must be unique" yet cannot be found: being deleted, or not yet visible.
            raise DiscountError(
                f"Shopify says discount code {code} exists but cannot find it; will try again", status_code=404
            )
        else:
            raise _error(response, f"looking up discount code {code}")
        if holder != str(rule_id):
            raise DiscountError(
                f"The discount code {code} already exists in the shop under another discount ({holder}, not this "
                f"campaign's {rule_id}); it was not given to this recipient.",
                permanent=True,
                status_code=422,
            )

    # ------------------------------------------------------------------ HTTP
    def _send(
        self, method: str, path: str, *, json: Any = None, params: Mapping[str, str] | None = None
    ) -> httpx.Response:
        return outbound.request(
            method,
            f"{self.api}{path}",
            json=json,
            params=params,
            headers=self.headers,
            timeout=self.timeout,
            error=DiscountError,
            service=SERVICE,
        )


def _stored_rule(campaign: Campaign) -> str:
    return Campaign.objects.filter(pk=campaign.pk).values_list("discount_price_rule_id", flat=True).first() or ""


def _errors_text(response: httpx.Response) -> str:
    """Shopify's ``{"errors": "..."}`` or ``{"errors": {"field": ["..."]}}`` as one line."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    errors = body.get("errors") if isinstance(body, dict) else None
    if isinstance(errors, dict):
        return "; ".join(
            f"{field} {' and '.join(map(str, why)) if isinstance(why, list) else why}" for field, why in errors.items()
        )
    if errors:
        return str(errors)[:300]
    return str(body)[:300]


def _is_duplicate_code(response: httpx.Response) -> bool:
    try:
        body = response.json()
    except ValueError:
        return False
    errors = body.get("errors") if isinstance(body, dict) else None
    reasons = errors.get("code") if isinstance(errors, dict) else None
    if isinstance(reasons, str):
        reasons = [reasons]
    return any("unique" in str(r).lower() or "taken" in str(r).lower() for r in reasons or [])


def _error(response: httpx.Response, doing: str) -> DiscountError:
    """Shopify's answer as our error: 408, 429 and 5xx are transient (with
    Shopify's Retry-After), any other answer is permanent."""
    status = response.status_code
    detail = _errors_text(response)
    if status in outbound.TRANSIENT_STATUSES or status >= 500:
        return DiscountError(
            f"Shopify answered HTTP {status} while {doing}; will try again" + (f" ({detail})" if detail else ""),
            status_code=status,
            retry_after=outbound.retry_after_seconds(response.headers),
        )
    if status in (401, 403):
        message = (
            f"Shopify refused our access while {doing} (HTTP {status}): check the shop's Admin API access token "
            "and that it may manage discounts (price rules)."
        )
    else:
        message = f"Shopify refused {doing} (HTTP {status})" + (f": {detail}" if detail else "")
    return DiscountError(message, permanent=True, status_code=status)
