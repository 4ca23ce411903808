"""Ops retry for the proofing stage: Error recipients whose error came from
proofing go back to ProofingStaged, keeping a discount code that is still
theirs.  The admin's "Retry" action and button call this."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace

import django_fsm as fsm
from django.db import transaction
from django.db.models import QuerySet

from campaigns.discounts.base import discount_code_for
from campaigns.models import (
    PROOF_OUTDATED,
    Campaign,
    CampaignRecipient,
    is_mailing_error,
    is_proofing_error,
    may_be_at_printer,
)
from campaigns.pipeline.doorbell import campaign_ring_on_commit
from campaigns.services import recipients_bulk_transition, recipients_new_submission
from common.fsm import Actor

Status = CampaignRecipient.Status


@dataclass
class RetryReport:
    """What an ops retry did, for the admin's message (both stages' retries)."""

    retried: int = 0
    not_eligible: Counter[str] = field(default_factory=Counter)
    stage: str = "proofing"

    def summary(self, words: Callable[[str], str] = str) -> str:
        """ "3 sent back to proofing; 2 not eligible: 1 already Sent, 1 not a proofing error";
        ``words`` rewrites each reason (the admin's: status names in words)."""
        text = f"{self.retried} sent back to {self.stage}"
        left = sum(self.not_eligible.values())
        if left:
            parts = ", ".join(f"{n} {words(why)}" for why, n in self.not_eligible.most_common())
            text += f"; {left} not eligible: {parts}"
        return text


def recipients_retry_proofing(*, queryset: QuerySet[CampaignRecipient], actor: Actor) -> RetryReport:
    """Send the proofing-stage Error rows of ``queryset`` back to ProofingStaged.

    Eligible: status Error with one of :data:`PROOFING_ERRORS`, and for
    BILLING_NOT_READY only rows without a proof (with one, the error came from
    the mailing stage's check, whose retry is the mailing stage's); also a
    mailing-stage Error row whose name or address was edited after its proof
    (``recipient_data_changed``).  A code the
    row holds is kept when it is still the one the campaign gives it (same
    campaign, prefix and secret), else cleared so the stage mints the right
    one.  Safe twice: a second run finds nothing eligible."""
    report = RetryReport()
    rows = list(
        queryset.values_list(
            "pk", "status", "error_message", "proof_url", "proof_version", "discount_code", "campaign_id"
        ).order_by("pk")
    )
    eligible: list[int] = []
    stale_codes: list[int] = []
    campaigns: dict[int, Campaign] = {}
    for pk, status, message, proof, version, code, campaign_id in rows:
        if status != Status.ERROR:
            report.not_eligible[f"already {status}" if status != Status.PENDING else "Pending"] += 1
        elif not is_proofing_error(SimpleNamespace(error_message=message, proof_url=proof, proof_version=version)):
            report.not_eligible["not a proofing error"] += 1
        else:
            eligible.append(pk)
            if code:
                campaign = campaigns.get(campaign_id) or Campaign.objects.get(pk=campaign_id)
                campaigns[campaign_id] = campaign
                if not campaign.discount_enabled or code != discount_code_for(campaign, pk):
                    stale_codes.append(pk)
    with transaction.atomic():
        moved = recipients_bulk_transition(
            queryset=CampaignRecipient.objects.filter(pk__in=eligible),
            method="retry_proofing",
            actor=actor,
            reason="ops retry: proofing",
        )
        CampaignRecipient.objects.filter(pk__in=set(stale_codes) & set(moved)).update(discount_code="")
        for campaign_id in set(
            CampaignRecipient.objects.filter(pk__in=moved).values_list("campaign_id", flat=True).distinct()
        ):
            campaign_ring_on_commit(campaign_id)
    report.retried = len(moved)
    report.not_eligible["changed meanwhile"] += len(eligible) - len(moved)
    if not report.not_eligible["changed meanwhile"]:
        del report.not_eligible["changed meanwhile"]
    return report


def recipient_data_changed(*, recipient: CampaignRecipient, actor: Actor) -> str:
    """The recipient's name or address (what its card shows and the printer is
    sent) was just edited.  A proof made before the edit shows the old data,
    and no card may be mailed from it:

    - Proofed, SendingStaged and never sent, or Scheduled and untouched (its
      day has not come, nothing of it is at the printer): back to
      ProofingStaged at once (``reproof``; the discount code is kept, the
      design's approval still holds; a Scheduled card is Scheduled again for
      its day once made);
    - Error from the mailing stage: the proof is marked outdated, so its retry
      (either button) makes the proof again first; a row that was sent before
      and has nothing at the printer gets a new submission generation now, or
      its next request would replay the old address under the old key (the
      form refuses an edit of a card the printer may have).

    Anything else is left alone: no proof yet (the stages read the new data),
    or the card is already at the printer (the form refuses those edits but
    a correction of a mailed record).  Returns a sentence for the admin, empty
    when nothing was done."""
    r = recipient
    if not r.proof_url or r.proof_version == PROOF_OUTDATED:
        return ""
    rows = CampaignRecipient.objects.filter(pk=r.pk, status=r.status, proof_url=r.proof_url)
    with transaction.atomic():
        if fsm.can_proceed(r.reproof):  # Proofed, never sent, or Scheduled and untouched: the edge's own conditions
            rows.update(proof_version=PROOF_OUTDATED)
            moved = recipients_bulk_transition(
                queryset=rows, method="reproof", actor=actor, reason="name or address edited after the proof"
            )
            if not moved:
                return ""
            campaign_ring_on_commit(r.campaign_id)
            return "Its card is made again from the new data by the next pipeline run before it is mailed."
        if r.status == Status.ERROR and is_mailing_error(r):
            if r.first_attempt_at is not None and not may_be_at_printer(r):
                recipients_new_submission(queryset=rows)
            rows.update(proof_version=PROOF_OUTDATED)
            return "Its card shows the old data, so a retry makes the proof again before it is mailed."
    return ""
