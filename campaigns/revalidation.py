"""Re-validation: the ops path back from Skipped or Blacklisted.

After fixing a recipient's data in the admin (or the org's blocklist, or its
cap), ops select the recipients and re-validate them in one action.  Each is
moved back to Pending (the ``revalidate`` edge), its data is checked again by
the same validator the import uses, and its campaign is qualified again, so a
recipient whose data is still wrong is Skipped again with the current errors,
never staged on the strength of an old check.  Running it twice is harmless:
the second run finds the rows already moved on.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from django.db import models

from campaigns.models import Campaign, CampaignRecipient
from campaigns.qualification import campaign_qualify
from campaigns.selectors import campaign_countries
from campaigns.services import recipients_bulk_transition
from campaigns.validation import RECIPIENT_FIELDS, recipient_validate
from common.fsm import Actor

Status = CampaignRecipient.Status


def recipients_revalidate(*, queryset: models.QuerySet[CampaignRecipient], actor: Actor) -> Counter[str]:
    """Re-validate and re-qualify the Skipped/Blacklisted recipients of
    ``queryset``; returns how many ended in each status (others are untouched)."""
    moved = recipients_bulk_transition(queryset=queryset, method="revalidate", actor=actor, reason="re-validate")
    outcome: Counter[str] = Counter()
    by_campaign: defaultdict[int, list[int]] = defaultdict(list)
    for campaign_id, pk in CampaignRecipient.objects.filter(pk__in=moved).values_list("campaign_id", "pk"):
        by_campaign[campaign_id].append(pk)
    for campaign in Campaign.objects.filter(pk__in=by_campaign):
        ids = by_campaign[campaign.pk]
        _skip_still_invalid(campaign, ids, actor)
        campaign_qualify(campaign=campaign, actor=actor)
        outcome.update(CampaignRecipient.objects.filter(pk__in=ids).values_list("status", flat=True))
    return outcome


def _skip_still_invalid(campaign: Campaign, ids: list[int], actor: Actor) -> None:
    countries = campaign_countries(campaign)
    fields = ["pk", "json", *RECIPIENT_FIELDS]
    failed: defaultdict[str, list[CampaignRecipient]] = defaultdict(list)
    cleared: list[CampaignRecipient] = []
    rows = CampaignRecipient.objects.filter(pk__in=ids, status=Status.PENDING).only(*fields)
    for r in rows:
        data: dict[str, Any] = {name: getattr(r, name) for name in RECIPIENT_FIELDS}
        checked = recipient_validate(data, countries=countries, enrichment=campaign.address_enrichment)
        if checked.skip_reason:
            r.json = {**r.json, "validation_errors": checked.errors}
            failed[checked.skip_reason].append(r)
        elif "validation_errors" in r.json:
            r.json = {k: v for k, v in r.json.items() if k != "validation_errors"}
            cleared.append(r)
    CampaignRecipient.objects.bulk_update(cleared, ["json"], batch_size=500)
    for reason, recipients in failed.items():
        CampaignRecipient.objects.bulk_update(recipients, ["json"], batch_size=500)
        recipients_bulk_transition(
            queryset=CampaignRecipient.objects.filter(pk__in=[r.pk for r in recipients]),
            method="skip",
            actor=actor,
            reason=f"re-validate: {reason}",
            updates={"skip_reason": reason},
        )
