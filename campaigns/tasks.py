"""django-q2 tasks: thin callers of the pipeline.  They carry ids, never
state (design principle 1); any of them may run twice, late or never."""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.utils import timezone

from campaigns.pipeline.doorbell import campaign_doorbell_answered, campaign_ring, ring_due
from campaigns.pipeline.runner import campaign_advance, campaign_due, campaigns_with_work
from campaigns.pipeline.sweeper import pipeline_sweep
from common.fsm import Actor

logger = logging.getLogger(__name__)


def campaign_run_task(campaign_id: int) -> int:
    """Move one campaign forward until it has no work or the task's time is
    nearly up; then ring again (work left) or mark the doorbell answered."""
    budget = float(settings.Q_CLUSTER["timeout"]) * 0.8
    report = campaign_advance(campaign_id, actor=Actor("task:pipeline"), deadline=time.monotonic() + budget)
    if report.more:
        campaign_ring(campaign_id)
    else:
        campaign_doorbell_answered(campaign_id)
    logger.info("campaign %s: %s rows moved%s", campaign_id, report.total, " (more to do)" if report.more else "")
    return report.total


def pipeline_tick_task() -> int:
    """The periodic sweep (a django-q2 Schedule, every minute): expired claims
    back to their queues, and a ring for every campaign with work whose
    doorbell was lost.  Returns how many campaigns were rung."""
    now = timezone.now()
    pipeline_sweep(actor=Actor("task:sweeper"), now=now)
    rung = 0
    for campaign in campaigns_with_work():
        if ring_due(campaign, now) and any(campaign_due(campaign, now).values()):
            rung += campaign_ring(campaign.pk)
    return rung
