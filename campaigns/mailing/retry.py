"""Ops retry for the mailing stage: Error recipients whose error came from
mailing go back to SendingStaged, keeping their proof and discount code.

Never under a new key while the old key's piece may exist: a row that was
never sent (billing, the queue) keeps its key and saved request, and so does
a row sent before whose piece may be at the printer
(``campaigns.models.may_be_at_printer``: its next attempt looks first).  Only
a row the printer refused, or whose lookup showed nothing, gets a new
submission generation (a new key, its request built again).  A row whose name
or address was edited after its proof goes back to proofing instead, its card
made again first (``campaigns.proofing.retry.recipient_data_changed`` marked
the proof outdated).  The admin's "Retry sending" calls this.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace

from django.db import transaction
from django.db.models import QuerySet

from campaigns.models import (
    MAILING_ERRORS,
    CampaignRecipient,
    is_mailing_error,
    may_be_at_printer,
    proof_outdated,
)
from campaigns.pipeline.doorbell import campaign_ring_on_commit
from campaigns.proofing.retry import RetryReport, recipients_retry_proofing
from campaigns.services import recipients_bulk_transition, recipients_new_submission
from common.fsm import Actor

Status = CampaignRecipient.Status


@dataclass
class SendRetryReport(RetryReport):
    stage: str = "mailing"
    new_keys: int = 0
    # Mailing errors whose name or address was edited after the proof: sent
    # back to proofing instead (``recipient_data_changed``).
    reproofed: int = 0

    def summary(self, words: Callable[[str], str] = str) -> str:
        text = super().summary(words)
        if self.reproofed:
            head, _, rest = text.partition(";")
            text = f"{head}; {self.reproofed} to proofing first (name or address edited since the proof)"
            text += f";{rest}" if rest else ""
        return text


def recipients_retry_sending(*, queryset: QuerySet[CampaignRecipient], actor: Actor) -> SendRetryReport:
    report = SendRetryReport()
    eligible: list[int] = []
    sent_before: list[int] = []
    outdated: list[int] = []
    for pk, status, message, proof, version, first, data in queryset.values_list(
        "pk", "status", "error_message", "proof_url", "proof_version", "first_attempt_at", "json"
    ).order_by("pk"):
        # A row sent before gets a new key only when the printer answered
        # that it has nothing (``may_be_at_printer`` false); otherwise it keeps
        # its key and request, and its next attempt looks the piece up first.
        row = SimpleNamespace(
            status=status,
            error_message=message,
            proof_url=proof,
            proof_version=version,
            first_attempt_at=first,
            json=data,
        )
        if status != Status.ERROR:
            report.not_eligible[f"already {status}"] += 1
        elif message in MAILING_ERRORS and proof_outdated(row):
            outdated.append(pk)
        elif not is_mailing_error(row):
            report.not_eligible["not a mailing error"] += 1
        else:
            eligible.append(pk)
            if first is not None and not may_be_at_printer(row):
                sent_before.append(pk)
    if outdated:
        again = recipients_retry_proofing(queryset=CampaignRecipient.objects.filter(pk__in=outdated), actor=actor)
        report.reproofed = again.retried
        report.not_eligible.update(again.not_eligible)
    with transaction.atomic():
        moved = recipients_bulk_transition(
            queryset=CampaignRecipient.objects.filter(pk__in=eligible),
            method="retry_sending",
            actor=actor,
            reason="ops retry: mailing",
        )
        fresh = set(sent_before) & set(moved)
        recipients_new_submission(queryset=CampaignRecipient.objects.filter(pk__in=fresh))
        for campaign_id in set(
            CampaignRecipient.objects.filter(pk__in=moved).values_list("campaign_id", flat=True).distinct()
        ):
            campaign_ring_on_commit(campaign_id)
    report.retried, report.new_keys = len(moved), len(fresh)
    if len(eligible) > len(moved):
        report.not_eligible["changed meanwhile"] += len(eligible) - len(moved)
    return report
