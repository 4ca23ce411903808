"""Stannp's status table: its statuses -> our mailpiece states (the spec's mapping, ``shared/spec/001``)."""

from __future__ import annotations

from mailpieces.status import MailpieceStatus

S = MailpieceStatus

# Our mailpiece states were modelled on Stannp, so its names map 1:1.  Both
# vocabularies appear: the reporting API says printing/handed_over, the webhook
# guide producing/dispatched.
STATUS_MAP: dict[str, MailpieceStatus] = {
    "received": S.RECEIVED,
    "producing": S.PRODUCING,
    "printing": S.PRODUCING,
    "handed_over": S.HANDED_OVER,
    "dispatched": S.HANDED_OVER,
    "in_transit": S.IN_TRANSIT,
    "local_delivery": S.LOCAL_DELIVERY,
    "delivered": S.DELIVERED,
    "returned": S.RETURNED,
    "cancelled": S.CANCELLED,
    "test": S.TEST,
}
