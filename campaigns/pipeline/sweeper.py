"""The sweeper: rows stuck in a working state past their lease.

A worker that died (or a task that timed out) leaves its claimed rows in the
working state with a lease that runs out.  The sweeper sends them back to the
stage's queue with the FSM's own edge, so the next run claims them again.
The dead worker's later writes are refused by the claim token (cleared here).
AddressEnriching rows are reclaimed by the enrichment stage itself (its
rows keep their attempt count and backoff there); the mailing stage adds its
Sending reconciliation in part 2.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter

from django.utils import timezone

from campaigns.models import CampaignRecipient
from campaigns.services import recipients_bulk_transition_chunked
from common.fsm import Actor

Status = CampaignRecipient.Status
CHUNK = 1000

# Working state → the transition that returns an expired claim to its queue.
EXPIRED_CLAIMS = {Status.PROOFING: "requeue_proofing", Status.SENDING: "requeue_sending"}


def pipeline_sweep(
    *, actor: Actor, now: dt.datetime | None = None, campaign_ids: list[int] | None = None
) -> Counter[str]:
    """Return expired claims to their queues; counts per working state."""
    now = now or timezone.now()
    counts: Counter[str] = Counter()
    for status, method in EXPIRED_CLAIMS.items():
        expired = CampaignRecipient.objects.filter(status=status, lease_until__lt=now)
        if campaign_ids is not None:
            expired = expired.filter(campaign_id__in=campaign_ids)
        moved = recipients_bulk_transition_chunked(
            rows=expired, method=method, actor=actor, reason="lease expired: the worker did not finish", chunk=CHUNK
        )
        if moved:
            counts[status] += moved
    # Scheduled rows are claimed by token and lease alone: free them again.
    # Whatever the dead worker sent is found by the lookup the next attempt
    # makes first (the row has a first attempt time).
    held = CampaignRecipient.objects.filter(status=Status.SCHEDULED, claim_token__isnull=False, lease_until__lt=now)
    if campaign_ids is not None:
        held = held.filter(campaign_id__in=campaign_ids)
    counts[Status.SCHEDULED] += held.update(claim_token=None, updated=now)
    return counts
