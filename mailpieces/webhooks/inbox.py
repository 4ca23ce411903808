"""Receiving a webhook: verify the raw bytes, store them, ring, answer.

Nothing here parses the body beyond the vendor's delivery id: an authentic
delivery is stored whatever it says, so a body we cannot read yet (a new
event type, our own parsing bug) is quarantined by processing and can be
re-read after a fix (``reprocess_webhooks``), never lost.  A forged one is
refused before anything is written.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from django.db import connection
from django.utils import timezone

from mailpieces.models import InboundWebhook
from mailpieces.webhooks.doorbell import webhooks_ring_on_commit
from printers.base import Printer, WebhookRequest, WebhookVerificationError

logger = logging.getLogger(__name__)

# Kept with every stored delivery besides the printer's own (signature, ids).
COMMON_HEADERS = ("Content-Type", "User-Agent")
# A header value longer than this is cut when stored (the verification used it whole).
HEADER_VALUE_MAX = 1000


@dataclass(frozen=True)
class Received:
    """What became of one delivery: stored as inbox row ``inbox_id``, or a
    duplicate of a delivery already stored (``duplicate``)."""

    event_id: str
    inbox_id: int | None
    duplicate: bool


def webhook_receive(*, printer: Printer, body: bytes, headers: Mapping[str, str], content_type: str = "") -> Received:
    """Verify one delivery over its raw ``body`` and store it in the inbox.

    Raises :class:`printers.base.WebhookVerificationError` when it is not
    authentic (no secret configured included: fail closed); nothing is
    stored then.  A delivery already stored is a no-op (``duplicate``).  The
    processing doorbell rings after the commit.
    """
    request = WebhookRequest(body=body, headers=headers)
    try:
        printer.verify_webhook(request)
    except WebhookVerificationError:
        raise
    except Exception as exc:  # a verifier's own bug or an odd header must not become a 500
        raise WebhookVerificationError(f"{printer.label} webhook could not be verified: {type(exc).__name__}") from exc
    event_id = printer.delivery_id(request)
    kept = {}
    for name in (*COMMON_HEADERS, *printer.webhook_headers):
        value = request.header(name)
        if value is not None:
            kept[name] = value[:HEADER_VALUE_MAX]
    inbox_id = _store(
        printer=printer.kind,
        event_id=event_id,
        body=body,
        headers=kept,
        content_type=(content_type or request.header("Content-Type") or "")[:200],
    )
    if inbox_id is None:
        logger.info("%s webhook %s already received", printer.kind, event_id)
        return Received(event_id=event_id, inbox_id=None, duplicate=True)
    webhooks_ring_on_commit()
    return Received(event_id=event_id, inbox_id=inbox_id, duplicate=False)


def _store(*, printer: str, event_id: str, body: bytes, headers: dict[str, str], content_type: str) -> int | None:
    """One ``INSERT … ON CONFLICT DO NOTHING RETURNING id``: the new row's id,
    or None when (printer, event id) is stored already.  One statement, no
    savepoint and no model instance: this is the whole cost of a webhook
    beyond its signature check (bench/README.md, webhooks)."""
    meta = InboundWebhook._meta
    quote = connection.ops.quote_name
    pg = connection.vendor == "postgresql"
    now = timezone.now()
    values = {
        "printer": printer,
        "event_id": event_id,
        "body": body,
        "headers": json.dumps(headers),
        "content_type": content_type,
        "received_at": now if pg else str(now.astimezone(dt.UTC).replace(tzinfo=None)),
        "state": InboundWebhook.State.PENDING.value,
        "events_count": 0,
        "attempts": 0,
        "error": "",
    }
    marks = ", ".join("%s::jsonb" if pg and name == "headers" else "%s" for name in values)
    sql = (
        f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(name) for name in values)}) VALUES ({marks}) "  # noqa: S608
        "ON CONFLICT (printer, event_id) DO NOTHING RETURNING id"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, list(values.values()))
        row = cursor.fetchone()
    return None if row is None else int(row[0])
