"""Mailpiece statuses (spec 001) and the one place that says which moves are allowed.

Printers report progress late, twice, out of order and with missing scans.  The
rules below are the whole policy; the FSM on ``Mailpiece`` and the webhook
processing both derive from :func:`can_move`, so there is no second list.
"""

from __future__ import annotations

from django.db import models


class MailpieceStatus(models.TextChoices):
    SUBMITTED = "Submitted"  # All postcards start here: what we sent to the printer.
    RECEIVED = "Received"
    PRODUCING = "Producing"
    HANDED_OVER = "HandedOver"
    IN_TRANSIT = "InTransit"
    LOCAL_DELIVERY = "LocalDelivery"
    DELIVERED = "Delivered"
    RETURNED = "Returned"
    CANCELLED = "Cancelled"
    TEST = "Test"
    ERROR = "Error"
    SENT = "Sent"
    PROCESSED = "Processed"
    UNKNOWN = "Unknown"  # Default value used when an invalid one is provided.


S = MailpieceStatus

# Progress rank.  A piece only ever moves to a higher rank (skips are fine:
# printers miss scans).  Sent (IntelliPrint "rendered") sits after Received and
# before Producing; Processed (Taylor 9/10) after Producing and before
# HandedOver (Taylor 11).  The spec's late edges Delivered -> Returned ->
# Cancelled are forward moves.
RANK: dict[str, int] = {
    S.SUBMITTED: 0,
    S.RECEIVED: 10,
    S.SENT: 15,
    S.PRODUCING: 20,
    S.PROCESSED: 25,
    S.HANDED_OVER: 30,
    S.IN_TRANSIT: 40,
    S.LOCAL_DELIVERY: 50,
    S.DELIVERED: 60,
    S.RETURNED: 70,
    S.CANCELLED: 80,
}

# Never left once reached.
TERMINAL: frozenset[str] = frozenset({S.CANCELLED, S.ERROR, S.TEST})

# Error is a failure of production or delivery: a printer can report it until
# the piece is delivered, never after.
ERROR_BEFORE_RANK = RANK[S.DELIVERED]


def can_move(current: str, target: str) -> bool:
    """True when a piece in ``current`` may be moved to ``target``.

    A repeated status is never a move: every rule below refuses it (ranks
    strictly increase; Unknown, Submitted and the terminal states are never
    targets of themselves), so it needs no rule of its own."""
    if current in TERMINAL:
        return False
    if target in (S.UNKNOWN, S.SUBMITTED):
        # An unknown vendor status is recorded, never applied; Submitted is
        # only ever the status a piece is created with.
        return False
    if current == S.UNKNOWN:
        # Unknown is a placeholder: any reported status replaces it.
        return True
    if target == S.TEST:
        return current == S.SUBMITTED
    if target == S.ERROR:
        return RANK[current] < ERROR_BEFORE_RANK
    return RANK[target] > RANK[current]


def coerce(value: str | None) -> MailpieceStatus:
    """The status named ``value``, or Unknown for anything invalid (spec: Unknown)."""
    try:
        return MailpieceStatus(value)  # type: ignore[arg-type]  # None raises ValueError like any invalid value
    except ValueError:  # None and "" included
        return MailpieceStatus.UNKNOWN
