"""The doorbell (design principle 1): a django-q2 task that says "campaign N
may have work".  It carries the campaign id, never state: the rows say what
is due, so a task that runs twice, late or never changes only the timing.

``campaign_ring`` enqueues ``campaigns.tasks.campaign_run_task`` and notes the
time on the campaign, so the tick does not ring again while a run is due.
When the enqueue itself fails (broker down) the failure is counted; the tick
rings again later, and after ``RING_ATTEMPTS`` failures in a row the
campaign's ProofingStaged rows become Error(FAILED_SUBMISSION_TO_PROOFING_QUEUE)
so ops see that the queue is down (their retry rings again).
"""

from __future__ import annotations

import datetime as dt
import logging
from datetime import timedelta

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from campaigns.models import Campaign, CampaignRecipient, ErrorMessages
from common.fsm import Actor

logger = logging.getLogger(__name__)

RING_ATTEMPTS = 3
# A rung doorbell not answered within this time is taken as lost: the tick
# rings again (the task may also simply still be queued: a duplicate is harmless).
RING_LEASE = timedelta(minutes=5)
TASK = "campaigns.tasks.campaign_run_task"


def enqueue(campaign_id: int) -> None:
    """Put the campaign's task on the queue (a seam tests replace to simulate
    a broker that is down or a task that is lost)."""
    from django_q.tasks import async_task

    async_task(TASK, campaign_id, task_name=f"campaign {campaign_id}", group="pipeline")


def campaign_ring(campaign_id: int) -> bool:
    """Ring the campaign's doorbell; False when the enqueue failed."""
    moment = timezone.now()
    try:
        enqueue(campaign_id)
    except Exception as exc:  # the broker's errors have no common type
        logger.warning("could not enqueue the run of campaign %s: %s", campaign_id, type(exc).__name__)
        Campaign.objects.filter(pk=campaign_id).update(doorbell_failures=F("doorbell_failures") + 1)
        failures = Campaign.objects.filter(pk=campaign_id).values_list("doorbell_failures", flat=True).first() or 0
        if failures >= RING_ATTEMPTS:
            _fail_queue(campaign_id, f"the task queue could not be reached {failures} times in a row")
        return False
    Campaign.objects.filter(pk=campaign_id).update(doorbell_rung_at=moment, doorbell_failures=0)
    return True


def campaign_ring_on_commit(campaign_id: int) -> None:
    """Ring once the caller's transaction commits (never for a rolled-back change)."""
    transaction.on_commit(lambda: campaign_ring(campaign_id))


def campaign_doorbell_answered(campaign_id: int) -> None:
    """The run found no more work: the next change rings afresh."""
    Campaign.objects.filter(pk=campaign_id).update(doorbell_rung_at=None)


def _fail_queue(campaign_id: int, detail: str) -> None:
    from campaigns.proofing.service import campaign_fail_staged

    campaign = Campaign.objects.get(pk=campaign_id)
    moved = 0
    for status, message in (
        (CampaignRecipient.Status.PROOFING_STAGED, ErrorMessages.FAILED_SUBMISSION_TO_PROOFING_QUEUE),
        (CampaignRecipient.Status.SENDING_STAGED, ErrorMessages.FAILED_SUBMISSION_TO_MAILING_QUEUE),
    ):
        moved += campaign_fail_staged(
            campaign=campaign, status=status, message=message, detail=detail, actor=Actor("pipeline:doorbell")
        )
    logger.error("campaign %s: %s staged rows set to Error: queue unavailable", campaign_id, moved)


def ring_due(campaign: Campaign, now: dt.datetime) -> bool:
    """Whether the tick should ring this campaign: never rung, or rung longer
    ago than the lease (the task was lost, or has not run yet)."""
    return campaign.doorbell_rung_at is None or campaign.doorbell_rung_at < now - RING_LEASE
