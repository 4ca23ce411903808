"""Read-only lookups that span models or modules (HackSoft's selectors).

Stages, the admin and the commands ask these instead of reaching into the
printer registry or the database themselves.
"""

from __future__ import annotations

from typing import Any

from campaigns.models import Campaign


def campaign_printer_class(campaign: Campaign) -> Any:
    """The campaign printer's class, or None while that printer module is not
    installed (then only the generic checks run)."""
    try:
        from printers.registry import get_printer_class

        return get_printer_class(campaign.printer)
    except ImportError:
        return None


def campaign_countries(campaign: Campaign) -> frozenset[str] | None:
    """The ISO countries the campaign's printer mails to (None: printer unknown
    here, so the country is only checked for being a real country)."""
    countries = getattr(campaign_printer_class(campaign), "countries", None)
    return frozenset(countries) if countries is not None else None
