"""Small helpers shared by the campaigns tests."""

from __future__ import annotations

from campaigns.models import CampaignRecipient


def outcome(recipient: CampaignRecipient) -> tuple[str, str]:
    """Where the recipient ended: (status, skip reason), read from the database."""
    recipient.refresh_from_db()
    return recipient.status, recipient.skip_reason
