"""Services that change mailpieces; every status change writes its history row."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from common.fsm import Actor, run_transition
from mailpieces.models import TRANSITION_FOR_STATUS, Mailpiece, MailpieceTransition
from mailpieces.status import MailpieceStatus, can_move


def mailpiece_transition(
    *,
    mailpiece: Mailpiece,
    method: str,
    actor: Actor,
    reason: str = "",
    payload: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> Mailpiece:
    run_transition(
        mailpiece,
        method,
        history=MailpieceTransition,
        obj_field="mailpiece",
        actor=actor,
        reason=reason,
        payload=payload,
        **kwargs,
    )
    return mailpiece


def mailpiece_apply_status(
    *,
    mailpiece: Mailpiece,
    status: MailpieceStatus,
    actor: Actor,
    at: dt.datetime | None = None,
    vendor_status: str = "",
    payload: Mapping[str, Any] | None = None,
) -> bool:
    """Apply a printer-reported status if it moves the piece forward.

    Returns True when the piece moved.  Lower-ranked, stale, unknown and
    post-terminal statuses are ignored (the caller records them): status only
    moves forward, whatever order the printer reports in.
    """
    if not can_move(mailpiece.status, status):
        return False
    if at is not None and mailpiece.status_at is not None and at < mailpiece.status_at:
        # An older event for a higher rank still moves forward; equal ranks
        # can't happen (can_move), so only the timestamp is kept monotonic.
        at = mailpiece.status_at
    mailpiece_transition(
        mailpiece=mailpiece,
        method=TRANSITION_FOR_STATUS[status],
        actor=actor,
        reason=f"printer reported {vendor_status or status}",
        payload=payload,
        at=at,
        vendor_status=vendor_status,
    )
    return True
