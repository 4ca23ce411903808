"""Work claims: how a stage takes a batch of rows so no two workers hold one.

A stage claims with one compare-and-swap per source state (reliability §2,
design principle 2): staged rows move to the stage's working state stamped
with a fresh claim token and a lease, through the FSM's own claim transition
(``start_enriching``, ``start_proofing``, ``start_sending``) and so with a
history row each.  Two workers asking at once get disjoint batches: on
PostgreSQL the rows are locked ``SKIP LOCKED`` and on SQLite the IMMEDIATE
transaction serialises the movers; either way the UPDATE only touches rows
still in the staged state.  The token then guards every later write of the
worker (:func:`recipient_claim_holds`), so a worker that outlived its lease
cannot overwrite the outcome of the one that took the row over.

For printing this claim is what keeps two workers from ever calling a printer
for the same recipient at once (IntelliPrint, which has no idempotency keys,
relies on it first and on its post-create reconcile second).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from django.db import connection
from django.db.models import Q
from django.utils import timezone

from campaigns.models import Campaign, CampaignRecipient
from campaigns.services import recipients_bulk_transition
from common.fsm import Actor, sources_of

# What the history says of a claim, in words.
CLAIM_REASONS = {
    "start_enriching": "taken by a worker to look up its address",
    "start_proofing": "taken by a worker to make its proof",
    "start_sending": "taken by a worker to send it to the printer",
}
# The claim transitions and what each one claims for.
CLAIM_METHODS = {
    "start_enriching": "enrichment",
    "start_proofing": "proofing",
    "start_sending": "sending",
}


@dataclass(frozen=True)
class Claim:
    """A batch one worker holds until ``lease_until``."""

    token: uuid.UUID
    ids: list[int]
    lease_until: dt.datetime

    def __len__(self) -> int:
        return len(self.ids)


def recipients_claim(
    *,
    campaign: Campaign,
    method: str,
    limit: int,
    lease: dt.timedelta,
    actor: Actor,
    now: dt.datetime | None = None,
    only: Q | None = None,
) -> Claim:
    """Claim up to ``limit`` of the campaign's staged recipients (lowest ids
    first) along ``method``, of those matching ``only`` when given; returns
    the ids this worker now holds, possibly fewer than asked when another
    worker took some of them."""
    if method not in CLAIM_METHODS:
        raise ValueError(f"{method!r} is not a claim transition; use one of {', '.join(sorted(CLAIM_METHODS))}")
    if limit < 1:
        raise ValueError(f"limit must be at least 1, not {limit}")
    token = uuid.uuid4()
    now = now or timezone.now()
    until = now + lease
    staged = sources_of(CampaignRecipient, method)
    # A staged row's lease, when set, is a "not before": the backoff after a
    # transient failure (requeue_proofing's ``not_before``).
    ready = Q(lease_until__isnull=True) | Q(lease_until__lte=now)
    candidates = CampaignRecipient.objects.filter(ready, campaign=campaign, status__in=staged)
    if only is not None:
        candidates = candidates.filter(only)
    candidates = candidates.order_by("id")
    if connection.features.has_select_for_update_skip_locked:
        # Skip the rows another worker is claiming right now *before* the
        # LIMIT: otherwise two workers pick the same first ``limit`` ids and
        # the second, skipping them all, claims nothing while rows wait.
        candidates = candidates.select_for_update(skip_locked=True)
    candidates = candidates.values("pk")[:limit]
    ids = recipients_bulk_transition(
        queryset=CampaignRecipient.objects.filter(pk__in=candidates),
        method=method,
        actor=actor,
        reason=CLAIM_REASONS[method],
        payload={"claim_token": str(token)},
        claim_token=token,
        lease_until=until,
    )
    return Claim(token=token, ids=sorted(ids), lease_until=until)


def recipient_claim_holds(*, recipient_id: int, token: uuid.UUID, now: dt.datetime | None = None) -> bool:
    """True while ``token`` still holds the recipient and its lease runs: the
    check a worker makes before any write (or printer call) on a claimed row."""
    return CampaignRecipient.objects.filter(
        pk=recipient_id, claim_token=token, lease_until__gt=now or timezone.now()
    ).exists()
