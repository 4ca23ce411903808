"""Lob's status table: event types -> our mailpiece states (the spec's mapping, ``shared/spec/001``).

The spec's rows come first; the rest of Lob's postcard vocabulary follows (vendors.md §1.5).
"""

from __future__ import annotations

from mailpieces.status import MailpieceStatus

S = MailpieceStatus

# Spec 001 rows first, then the rest of Lob's postcard vocabulary (vendors.md §1.5).
STATUS_MAP: dict[str, MailpieceStatus] = {
    "postcard.created": S.PRODUCING,
    "postcard.mailed": S.HANDED_OVER,
    "postcard.in_transit": S.IN_TRANSIT,
    "postcard.processed_for_delivery": S.LOCAL_DELIVERY,
    "postcard.in_local_area": S.LOCAL_DELIVERY,
    "postcard.delivered": S.DELIVERED,
    "postcard.returned_to_sender": S.RETURNED,
    "postcard.deleted": S.CANCELLED,
    # Extensions.  Rendering happens while the piece is in production.
    "postcard.rendered_pdf": S.PRODUCING,
    "postcard.rendered_thumbnails": S.PRODUCING,
    # A re-route or an exit scan means the piece is still travelling.
    "postcard.re-routed": S.IN_TRANSIT,
    "postcard.international_exit": S.IN_TRANSIT,
    "postcard.failed": S.ERROR,
    "postcard.rejected": S.ERROR,
    # Engagement, not progress: recorded, never applied.
    "postcard.viewed": S.UNKNOWN,
    "postcard.informed_delivery.email_sent": S.UNKNOWN,
    "postcard.informed_delivery.email_opened": S.UNKNOWN,
    "postcard.informed_delivery.email_clicked_through": S.UNKNOWN,
}

# Event type -> the name of the tracking event (``body.tracking_events[].name``) whose
# ``time`` says when the scan happened (vendors.md §1.5).
TRACKING_NAMES: dict[str, str] = {
    "postcard.mailed": "Mailed",
    "postcard.in_transit": "In Transit",
    "postcard.in_local_area": "In Local Area",
    "postcard.processed_for_delivery": "Processed for Delivery",
    "postcard.delivered": "Delivered",
    "postcard.re-routed": "Re-Routed",
    "postcard.returned_to_sender": "Returned to Sender",
    "postcard.international_exit": "International Exit",
}
