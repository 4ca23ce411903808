"""django-q2 tasks: thin callers of webhook processing.  They carry nothing;
the inbox says what is due, so a task may run twice, late or never."""

from __future__ import annotations

import logging
import time

from django.conf import settings

from mailpieces.webhooks.processing import webhooks_process

logger = logging.getLogger(__name__)


def process_webhooks_task() -> int:
    """Drain the inbox (the doorbell, and the Schedule every 15 s); the
    number of deliveries and waiting reports decided."""
    budget = float(settings.Q_CLUSTER["timeout"]) * 0.8
    report = webhooks_process(deadline=time.monotonic() + budget)
    if report.deliveries or report.adopted or report.failed:
        logger.info("webhooks: %s", report)
    return report.deliveries + report.adopted
