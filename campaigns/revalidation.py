"""Re-validation: the ops path back from Skipped or Blacklisted.

After fixing a recipient's data in the admin (or the org's blocklist, or its
cap), ops select the recipients and re-validate them in one action.  Each is
moved back to Pending (the ``revalidate`` edge), its data is checked again by
the same validator the import uses, and the rows that pass are qualified
again, so a recipient whose data is still wrong is Skipped again with the
current errors, never staged on the strength of an old check.  A value the
import had to alter to store it (cut to the column length, a NUL written out)
fails until a person edits it (``validation.recipient_recheck``).

It all happens in one transaction: no other worker ever sees the rows in
Pending before their re-check (a concurrent qualification would stage them),
an error midway leaves them where they were, and only the selected rows are
qualified, never the campaign's other Pending rows.  Running it twice is
harmless: the second run finds the rows already moved on.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping
from typing import Any

from django.db import models, transaction

from campaigns.models import Campaign, CampaignRecipient
from campaigns.qualification import campaign_qualify
from campaigns.recipient_json import ALTERED_FIELDS, VALIDATION_ERRORS
from campaigns.selectors import campaign_countries
from campaigns.services import recipients_bulk_transition
from campaigns.validation import RECIPIENT_FIELDS, recipient_recheck
from common.fsm import Actor

Status = CampaignRecipient.Status
REVALIDATED_FROM = (Status.SKIPPED, Status.BLACKLISTED)


def recipients_revalidate(*, queryset: models.QuerySet[CampaignRecipient], actor: Actor) -> Counter[str]:
    """Re-validate and re-qualify the Skipped/Blacklisted recipients of
    ``queryset``; returns how many ended in each status (others are untouched)."""
    outcome: Counter[str] = Counter()
    with transaction.atomic():
        # The json as it was before the move: the move back to Pending clears
        # the problem keys, altered_fields among them, and the re-check needs it.
        before = dict(
            CampaignRecipient.objects.select_for_update()
            .filter(pk__in=queryset.values("pk"), status__in=REVALIDATED_FROM)
            .order_by("pk")
            .values_list("pk", "json")
        )
        moved = recipients_bulk_transition(
            queryset=CampaignRecipient.objects.filter(pk__in=before),
            method="revalidate",
            actor=actor,
            reason="re-validate",
        )
        by_campaign: defaultdict[int, list[int]] = defaultdict(list)
        for campaign_id, pk in CampaignRecipient.objects.filter(pk__in=moved).values_list("campaign_id", "pk"):
            by_campaign[campaign_id].append(pk)
        for campaign in Campaign.objects.filter(pk__in=by_campaign).select_related("organization"):
            ids = by_campaign[campaign.pk]
            passed = _recheck(campaign, ids, before, actor)
            if passed:
                campaign_qualify(campaign=campaign, actor=actor, only_ids=passed)
            outcome.update(CampaignRecipient.objects.filter(pk__in=ids).values_list("status", flat=True))
    return outcome


def _recheck(campaign: Campaign, ids: list[int], before: Mapping[int, Any], actor: Actor) -> list[int]:
    """Skip again the rows whose data still fails, with the current errors;
    returns the ids of the rows that pass, their data stored as the import
    would store it (stripped, country and state as codes)."""
    countries = campaign_countries(campaign)
    failed: defaultdict[str, list[CampaignRecipient]] = defaultdict(list)
    passed: list[CampaignRecipient] = []
    rows = CampaignRecipient.objects.filter(pk__in=ids, status=Status.PENDING).only("pk", "json", *RECIPIENT_FIELDS)
    for r in rows:
        data = {name: getattr(r, name) for name in RECIPIENT_FIELDS}
        stored = before.get(r.pk)
        checked = recipient_recheck(
            data,
            stored=stored if isinstance(stored, dict) else {},
            countries=countries,
            enrichment=campaign.address_enrichment,
        )
        # The old verdict goes whichever way this one ends.
        r.json = {k: v for k, v in r.json.items() if k not in (VALIDATION_ERRORS, ALTERED_FIELDS)}
        if checked.skip_reason:
            r.json.update(checked.json)
            failed[checked.skip_reason].append(r)
        else:
            for name in RECIPIENT_FIELDS:
                setattr(r, name, checked.data[name])
            passed.append(r)
    CampaignRecipient.objects.bulk_update(passed, ["json", *RECIPIENT_FIELDS], batch_size=500)
    for reason, recipients in failed.items():
        CampaignRecipient.objects.bulk_update(recipients, ["json"], batch_size=500)
        recipients_bulk_transition(
            queryset=CampaignRecipient.objects.filter(pk__in=[r.pk for r in recipients]),
            method="skip",
            actor=actor,
            reason=f"re-validate: {reason}",
            skip_reason=reason,
        )
    return [r.pk for r in passed]
