"""The sweeper: rows stuck in a working state past their lease.

A worker that died (or a task that timed out) leaves its claimed rows in the
working state with a lease that runs out.  The sweeper sends them back to the
stage's queue with the FSM's own edge, so the next run claims them again.
The dead worker's later writes are refused by the claim token (cleared here).
AddressEnriching rows are reclaimed by the enrichment stage itself (its
rows keep their attempt count and backoff there).  A Sending row swept back
says why it waits (``_requeue_sending``) and is looked up at the printer
before it is sent again (it has a first attempt time).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from campaigns.models import CampaignRecipient
from campaigns.services import recipients_bulk_transition, recipients_bulk_transition_chunked
from common.fsm import Actor

Status = CampaignRecipient.Status
CHUNK = 1000

LEASE_EXPIRED = "lease expired: the worker did not finish"
# What a swept Sending row says while it waits (ops read it in the "Why" column).
WORKER_STOPPED = (
    "the worker sending it stopped before the printer's answer was recorded; it is tried again, and a card "
    "that was sent is looked up at the printer first"
)

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
        if status == Status.SENDING:
            moved = _requeue_sending(expired, actor)
        else:
            moved = recipients_bulk_transition_chunked(
                rows=expired, method=method, actor=actor, reason=LEASE_EXPIRED, chunk=CHUNK
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


def _requeue_sending(rows: QuerySet[CampaignRecipient], actor: Actor) -> int:
    """Expired Sending rows back to SendingStaged, each saying why it waits
    (ops read it in the "Why" column; the history has "lease expired").  A
    death does not count as an attempt: a deploy or a crash that kills a
    worker hits whatever batch it held, and its cards must not run out of
    tries for it (a chaos run with six kills put three times as many cards in
    Error when it did).  Moved and marked in one transaction, chunk by chunk."""
    total = 0
    while True:
        ids = list(rows.order_by("id").values_list("id", flat=True)[:CHUNK])
        if not ids:
            return total
        with transaction.atomic():
            moved = recipients_bulk_transition(
                queryset=rows.filter(pk__in=ids), method="requeue_sending", actor=actor, reason=LEASE_EXPIRED
            )
            CampaignRecipient.objects.filter(pk__in=moved).update(error_detail=WORKER_STOPPED)
        total += len(moved)
        if not moved:
            return total
