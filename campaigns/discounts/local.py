"""The local discount backend: codes live in our database (``LocalDiscountCode``).

It stands in for the shop in development, the demo and benchmarks, and keeps
the same promises as Shopify: a code exists once, a second mint of the same
code for the same recipient finds it, and a code that belongs to somebody else
is never handed out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from django.db import IntegrityError, transaction

from campaigns.discounts.base import DiscountError
from campaigns.discounts.service import parse_discount_value
from campaigns.models import LocalDiscountCode

if TYPE_CHECKING:
    from campaigns.models import Campaign


class LocalDiscountClient:
    name = "local"
    # Writes our database: the proofing stage calls it from its own thread
    # (a worker thread would need its own connection and transaction).
    uses_database = True

    def mint(self, *, campaign: Campaign, recipient_id: int, code: str) -> str:
        """Get or create the row of ``code``.  Two workers minting the same
        code at once: the unique index lets one insert win, the other's
        IntegrityError sends it to read the winner's row."""
        # Same check as the Shopify backend, so a bad value fails in the demo too.
        parse_discount_value(campaign.discount_value)
        row = LocalDiscountCode.objects.filter(code=code).first()
        if row is None:
            try:
                # A savepoint: the failed INSERT must not poison a caller's transaction.
                with transaction.atomic():
                    LocalDiscountCode.objects.create(
                        code=code, campaign=campaign, recipient_id=recipient_id, value=campaign.discount_value
                    )
                return code
            except IntegrityError:
                row = LocalDiscountCode.objects.filter(code=code).first()
                if row is None:  # the winner's row vanished (campaign deleted): try again later
                    raise DiscountError(f"discount code {code} could not be stored; will try again") from None
        if row.campaign_id != campaign.pk or row.recipient_id != recipient_id:
            raise _taken(code)
        return code

    def mint_many(self, *, campaign: Campaign, codes: Mapping[int, str]) -> dict[int, str | DiscountError]:
        """``mint`` for a whole batch ({recipient id: code}) in two statements:
        insert what is missing (conflicts ignored), then read every code's
        owner back.  Each recipient gets its code, or the error ``mint`` would
        have raised for it."""
        parse_discount_value(campaign.discount_value)
        if not codes:
            return {}
        with transaction.atomic():
            LocalDiscountCode.objects.bulk_create(
                [
                    LocalDiscountCode(code=code, campaign=campaign, recipient_id=rid, value=campaign.discount_value)
                    for rid, code in codes.items()
                ],
                ignore_conflicts=True,
                batch_size=500,
            )
            owners = {
                code: (campaign_id, rid)
                for code, campaign_id, rid in LocalDiscountCode.objects.filter(code__in=codes.values()).values_list(
                    "code", "campaign_id", "recipient_id"
                )
            }
        out: dict[int, str | DiscountError] = {}
        for rid, code in codes.items():
            owner = owners.get(code)
            if owner is None:
                out[rid] = DiscountError(f"discount code {code} could not be stored; will try again")
            elif owner != (campaign.pk, rid):
                out[rid] = _taken(code)
            else:
                out[rid] = code
        return out


def _taken(code: str) -> DiscountError:
    return DiscountError(
        f"The discount code {code} already belongs to another recipient; it was not given to this one.",
        permanent=True,
    )
