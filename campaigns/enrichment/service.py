"""``campaign_enrich``: one enrichment batch of a campaign.

1. Claim: AddressEnrichable -> AddressEnriching in one CAS, stamping a claim
   token and a lease; rows whose lease ran out in AddressEnriching (a worker
   died, or a transient error asked for a retry) are re-claimed by token only.
2. Look each claimed row up through the client, outside any transaction.
3. Apply, guarded by the token: an address -> filled in, validated again ->
   Pending (mark_enriched) or Skipped with the validator's reason; no result
   -> Skipped(EnrichmentFailed); matched without a usable address, or too
   little to look up -> Skipped(NoAddress); a transient error -> stays
   AddressEnriching with a later lease, and Skipped(EnrichmentFailed) after
   ``MAX_ATTEMPTS``.  A fatal error (credentials) stops the run and releases
   the rows not yet looked up.
Enriched rows are Pending again: the next qualification stages them.
"""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from campaigns.claims import recipients_claim
from campaigns.enrichment.base import (
    EnrichmentClient,
    EnrichmentError,
    EnrichmentQuery,
    EnrichmentResult,
    get_enrichment_client,
)
from campaigns.models import Campaign, CampaignRecipient
from campaigns.recipient_json import ENRICHMENT, ENRICHMENT_ERROR, EXTRA
from campaigns.selectors import campaign_countries
from campaigns.services import recipients_bulk_transition
from campaigns.validation import recipient_validate
from common.fsm import Actor

Status = CampaignRecipient.Status
SkipReason = CampaignRecipient.SkipReason
LEASE = timedelta(minutes=10)
RETRY_AFTER = timedelta(minutes=1)
MAX_ATTEMPTS = 3
_PHONE_KEYS = ("phone", "phone_number", "mobile", "telephone")


def _query(r: CampaignRecipient) -> EnrichmentQuery:
    extra = {str(k).casefold(): v for k, v in ((r.json or {}).get(EXTRA) or {}).items()}
    phone = next((str(extra[k]) for k in _PHONE_KEYS if extra.get(k)), "")
    return EnrichmentQuery(
        first_name=r.first_name,
        last_name=r.last_name,
        email=r.email,
        phone=phone,
        city=r.city,
        state=r.state,
        zip=r.zip,
    )


def claim_lease(batch_size: int, timeout_s: float) -> timedelta:
    """How long a claim lasts: at least ``LEASE``, and never shorter than the
    worst case of the batch (every lookup hitting the client's timeout), or a
    second run would re-claim rows still being looked up (paid twice, and the
    first run's answers thrown away by the token guard)."""
    return max(LEASE, timedelta(seconds=batch_size * timeout_s * 1.5))


def _claim(
    campaign: Campaign, actor: Actor, batch_size: int, lease: timedelta
) -> tuple[uuid.UUID, list[CampaignRecipient]]:
    """The shared stage claim (``campaigns.claims``), topped up with rows whose
    lease ran out in AddressEnriching: those are re-stamped with this claim's
    token and lease, without a transition (they are already there)."""
    now = timezone.now()
    claim = recipients_claim(
        campaign=campaign, method="start_enriching", limit=batch_size, lease=lease, actor=actor, now=now
    )
    room = batch_size - len(claim)
    if room > 0:
        stale = campaign.recipients.filter(status=Status.ADDRESS_ENRICHING, lease_until__lt=now)
        stale_ids = list(stale.order_by("id").values_list("id", flat=True)[:room])
        stale.filter(pk__in=stale_ids).update(claim_token=claim.token, lease_until=claim.lease_until, updated=now)
    rows = CampaignRecipient.objects.filter(claim_token=claim.token, status=Status.ADDRESS_ENRICHING).order_by("id")
    return claim.token, list(rows)


def campaign_enrich(
    *, campaign: Campaign, actor: Actor, batch_size: int = 100, client: EnrichmentClient | None = None
) -> dict[str, Any]:
    """Enrich up to ``batch_size`` recipients; returns counts per outcome (and
    ``stopped`` with the reason when a fatal error ended the run)."""
    client = client or get_enrichment_client()
    lease = claim_lease(batch_size, float(getattr(client, "timeout", 0) or 0))
    token, rows = _claim(campaign, actor, batch_size, lease)
    results: dict[int, EnrichmentResult | EnrichmentError] = {}
    stopped = ""
    for r in rows:  # no transaction is open here: lookups are slow network calls
        try:
            results[r.pk] = client.lookup(_query(r))
        except EnrichmentError as exc:
            if exc.fatal:
                stopped = exc.message
                break
            results[r.pk] = exc
    counts = _apply(campaign, actor, client.name, rows, results, token)
    out: dict[str, Any] = dict(counts)
    if stopped:
        out["stopped"] = stopped
    return out


def _apply(
    campaign: Campaign,
    actor: Actor,
    backend: str,
    rows: list[CampaignRecipient],
    results: dict[int, EnrichmentResult | EnrichmentError],
    token: uuid.UUID,
) -> Counter[str]:
    now = timezone.now()
    countries = campaign_countries(campaign)
    moves: defaultdict[tuple[str, str], list[int]] = defaultdict(list)
    counts: Counter[str] = Counter()
    with transaction.atomic():
        for r in rows:
            mine = CampaignRecipient.objects.filter(pk=r.pk, claim_token=token)
            result = results.get(r.pk)
            if result is None:  # not looked up (fatal stop): free it for the next run
                mine.update(claim_token=None, lease_until=now, updated=now)
                counts["released"] += 1
                continue
            if isinstance(result, EnrichmentError):
                trail = {**r.json, ENRICHMENT: {"backend": backend, ENRICHMENT_ERROR: result.message}}
                if r.attempt + 1 >= MAX_ATTEMPTS:
                    mine.update(json=trail, attempt=r.attempt + 1, updated=now)
                    moves[("skip", SkipReason.ENRICHMENT_FAILED)].append(r.pk)
                else:
                    retry_at = now + RETRY_AFTER * (r.attempt + 1)
                    mine.update(json=trail, attempt=r.attempt + 1, claim_token=None, lease_until=retry_at, updated=now)
                    counts["retry_later"] += 1
                continue
            info = {"backend": backend, "outcome": result.outcome, "detail": result.detail, "match": result.match_type}
            if result.address is None:
                reason = SkipReason.ENRICHMENT_FAILED if result.outcome == "no_match" else SkipReason.NO_ADDRESS
                mine.update(json={**r.json, ENRICHMENT: info}, updated=now)
                moves[("skip", reason)].append(r.pk)
                continue
            address = vars(result.address)
            data = {f: getattr(r, f) for f in ("external_id", "first_name", "last_name", "company", "email")}
            checked = recipient_validate({**data, **address}, countries=countries)
            payload: dict[str, Any] = {**r.json, ENRICHMENT: info}
            if checked.skip_reason:
                payload.update(checked.json)
                moves[("skip", checked.skip_reason)].append(r.pk)
            else:
                moves[("mark_enriched", "")].append(r.pk)
            mine.update(json=payload, updated=now, **{k: checked.data[k] for k in address})
        for (method, reason), ids in moves.items():
            # The transition itself releases the claim (token and lease).
            arguments: dict[str, Any] = {"skip_reason": str(reason)} if reason else {}
            moved = recipients_bulk_transition(
                queryset=CampaignRecipient.objects.filter(pk__in=ids, claim_token=token),
                method=method,
                actor=actor,
                reason="enrichment" + (f": {reason}" if reason else ""),
                **arguments,
            )
            counts[f"Skipped:{reason}" if reason else str(Status.PENDING)] += len(moved)
    return counts
