"""Services that change recipients.  Every status change goes through here (or
``common.fsm``), so every change writes its history row."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from django.db import models
from django.utils import timezone

from campaigns.models import CampaignRecipient, RecipientTransition
from common.fsm import Actor, bulk_transition, history_row, run_transition


def recipient_transition(
    *,
    recipient: CampaignRecipient,
    method: str,
    actor: Actor,
    reason: str = "",
    payload: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> CampaignRecipient:
    """Run one transition method on one recipient, save it and log it.

    Raises ``django_fsm.TransitionNotAllowed`` or ``ConcurrentTransition``.
    """
    run_transition(
        recipient,
        method,
        history=RecipientTransition,
        obj_field="recipient",
        actor=actor,
        reason=reason,
        payload=payload,
        **kwargs,
    )
    return recipient


def recipients_bulk_transition(
    *,
    queryset: models.QuerySet[CampaignRecipient],
    method: str,
    actor: Actor,
    reason: str = "",
    payload: Mapping[str, Any] | None = None,
    updates: Mapping[str, Any] | None = None,
) -> list[int]:
    """Move every eligible recipient of ``queryset`` along ``method``'s edges in
    one CAS per source state; ineligible rows are left alone.  Returns the ids
    moved.  ``updates`` are extra field values set in the same UPDATE."""
    return bulk_transition(
        queryset,
        method,
        history=RecipientTransition,
        obj_field="recipient",
        actor=actor,
        reason=reason,
        payload=payload,
        updates=updates,
    )


def recipients_record_created(
    *, recipients: Iterable[CampaignRecipient], actor: Actor, reason: str = "created"
) -> None:
    """History rows for recipients just created (e.g. by ``bulk_create``) in
    their initial status: the log starts at creation, not at the first move."""
    now = timezone.now()
    RecipientTransition.objects.bulk_create(
        [
            history_row(
                RecipientTransition,
                obj_field="recipient",
                obj_id=r.pk,
                from_status="",
                to_status=r.status,
                actor=actor,
                reason=reason,
                payload={"skip_reason": r.skip_reason} if r.skip_reason else None,
                at=now,
            )
            for r in recipients
        ],
        batch_size=1000,
    )
