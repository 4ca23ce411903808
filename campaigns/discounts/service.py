"""A recipient's discount code, minted once, and the campaign's discount value.

The proofing stage calls :func:`recipient_discount_code` for each recipient and
stores what it returns on the recipient.  A recipient that already holds a code
keeps it: a retry of the stage, an ops retry or a duplicate task never mints a
second one, whatever the backend.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Literal

from campaigns.discounts.base import DiscountClient, DiscountError, discount_code_for, get_discount_client

if TYPE_CHECKING:
    from campaigns.models import Campaign

# "10%", "12.5 %", "5", "5.00", "$5.00": a percentage or an amount in the
# shop's currency, at most two decimals (Shopify's money precision).
_VALUE = re.compile(r"^\s*(?:[$€£]\s*)?(?P<number>\d+(?:\.\d{1,2})?)\s*(?P<percent>%)?\s*$")


@dataclass(frozen=True)
class DiscountValue:
    """A campaign's discount in Shopify's terms: ``value`` is the negative
    adjustment as text ("-10.0", "-5.00"), as the price rule wants it."""

    value_type: Literal["percentage", "fixed_amount"]
    amount: Decimal  # positive: 10 for 10 %, 5.00 for 5.00 off

    @property
    def value(self) -> str:
        if self.value_type == "percentage":
            # Shopify's own examples write "-10.0"; keep a second decimal only when there is one.
            return f"-{self.amount:.1f}" if self.amount == round(self.amount, 1) else f"-{self.amount:.2f}"
        return f"-{self.amount:.2f}"


def parse_discount_value(text: str) -> DiscountValue:
    """``"10%"`` → 10 % off, ``"5.00"`` → 5.00 off; anything else is a
    permanent error (a typo in the campaign, not something a retry fixes)."""
    match = _VALUE.match(text or "")
    if match is None:
        raise DiscountError(
            f"The campaign's discount value {text!r} is not understood: "
            'write a percentage such as "10%" or an amount such as "5.00".',
            permanent=True,
        )
    try:
        amount = Decimal(match["number"])
    except InvalidOperation:  # the pattern admits only digits; kept for safety
        raise DiscountError(f"The campaign's discount value {text!r} is not a number.", permanent=True) from None
    percent = bool(match["percent"])
    if amount <= 0 or (percent and amount > 100):
        raise DiscountError(
            f"The campaign's discount value {text!r} is out of range: "
            "a percentage must be above 0 and at most 100, an amount above 0.",
            permanent=True,
        )
    return DiscountValue("percentage" if percent else "fixed_amount", amount)


def recipient_discount_code(
    *, campaign: Campaign, recipient_id: int, existing_code: str, client: DiscountClient | None = None
) -> str:
    """The code recipient ``recipient_id`` gets: ``existing_code`` unchanged
    when it has one (never re-minted, even if the secret or prefix changed
    since), else the derived code, made to exist in the shop.

    Call it outside a database transaction: the Shopify backend stores the
    campaign's price rule with its own UPDATE, which must commit even if the
    caller's work rolls back (see docs/discounts.md)."""
    if existing_code:
        return existing_code
    code = discount_code_for(campaign, recipient_id)
    return (client or get_discount_client()).mint(campaign=campaign, recipient_id=recipient_id, code=code)
