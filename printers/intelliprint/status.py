"""IntelliPrint's status table: its statuses -> our mailpiece states (the spec's mapping, ``shared/spec/001``)."""

from __future__ import annotations

from mailpieces.status import MailpieceStatus

S = MailpieceStatus

STATUS_MAP: dict[str, MailpieceStatus] = {
    # The spec's rows.
    "waiting_to_print": S.RECEIVED,
    "rendered": S.SENT,
    "failed": S.ERROR,
    # The spec lists invalid_address under Cancelled and Error: we chose Error,
    # because the recipient needs a fixed address, not a silent stop.
    "invalid_address": S.ERROR,
    # IntelliPrint's public vocabulary.  Its "sent" (posted into Royal Mail) is
    # not our Sent (which the spec gives to "rendered"); nothing maps to
    # Delivered: untracked Royal Mail post has no delivery scan.
    "draft": S.SUBMITTED,
    "printing": S.PRODUCING,
    "enclosing": S.PRODUCING,
    "shipping": S.HANDED_OVER,
    "sent": S.IN_TRANSIT,
    "returned": S.RETURNED,
    "failed_wrong_address": S.ERROR,
    "cancelled": S.CANCELLED,
}
