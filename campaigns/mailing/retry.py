"""Ops retry for the mailing stage: Error recipients whose error came from
mailing go back to SendingStaged, keeping their proof and discount code.

Never under a new key while the old key's piece may exist: a row that was
never sent (billing, the queue) keeps its key and saved request; a row that
was sent reached Error only on a definitive refusal by the printer or after a
lookup showed the printer holds nothing for it, so it gets a new submission
generation (a new key, its request built again from the data as it is now:
ops may have fixed the address).  The admin's "Retry sending" calls this.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

from django.db import transaction
from django.db.models import F, QuerySet

from campaigns.models import CampaignRecipient, is_mailing_error
from campaigns.pipeline.doorbell import campaign_ring_on_commit
from campaigns.proofing.retry import RetryReport
from campaigns.services import recipients_bulk_transition
from common.fsm import Actor
from common.models import JSONRemove

Status = CampaignRecipient.Status


@dataclass
class SendRetryReport(RetryReport):
    stage: str = "mailing"
    new_keys: int = 0


def recipients_retry_sending(*, queryset: QuerySet[CampaignRecipient], actor: Actor) -> SendRetryReport:
    report = SendRetryReport()
    eligible: list[int] = []
    sent_before: list[int] = []
    for pk, status, message, proof, first in queryset.values_list(
        "pk", "status", "error_message", "proof_url", "first_attempt_at"
    ).order_by("pk"):
        if status != Status.ERROR:
            report.not_eligible[f"already {status}"] += 1
        elif not is_mailing_error(SimpleNamespace(error_message=message, proof_url=proof)):
            report.not_eligible["not a mailing error"] += 1
        else:
            eligible.append(pk)
            if first is not None:
                sent_before.append(pk)
    with transaction.atomic():
        moved = recipients_bulk_transition(
            queryset=CampaignRecipient.objects.filter(pk__in=eligible),
            method="retry_sending",
            actor=actor,
            reason="ops retry: mailing",
        )
        fresh = set(sent_before) & set(moved)
        CampaignRecipient.objects.filter(pk__in=fresh).update(
            submission_gen=F("submission_gen") + 1,
            idempotency_key="",
            first_attempt_at=None,
            json=JSONRemove("json", [("submission",)]),
        )
        for campaign_id in set(
            CampaignRecipient.objects.filter(pk__in=moved).values_list("campaign_id", flat=True).distinct()
        ):
            campaign_ring_on_commit(campaign_id)
    report.retried, report.new_keys = len(moved), len(fresh)
    if len(eligible) > len(moved):
        report.not_eligible["changed meanwhile"] += len(eligible) - len(moved)
    return report
