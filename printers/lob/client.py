"""Lob (US): JSON postcards with idempotency keys, metadata lookup, signed event webhooks.

Wire facts are in ``shared/docs/vendors.md`` §1; our choices in ``docs/printers/lob.md``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from mailpieces.status import RANK
from printers import http, signing
from printers.base import (
    ModelDump,
    Printer,
    PrinterError,
    PrinterEvent,
    Submission,
    SubmitRequest,
    WebhookRequest,
    WebhookVerificationError,
    aware,
    load_webhook_body,
)
from printers.kinds import PrinterKind
from printers.lob.approval import LOB_COUNTRIES, LobRecipientApproval
from printers.lob.status import STATUS_MAP, TRACKING_NAMES
from printers.replays import existing_after_key_reuse, says_key_reused

SIZES = frozenset({"4x6", "6x9", "6x11"})
MAX_SEND_AHEAD_DAYS = 180
MAX_METADATA_KEYS = 20
LOB_VERSION = "2020-02-11"
DEFAULT_TOLERANCE_S = 300


class LobEventType(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str = Field(min_length=1)


class LobEvent(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str = Field(min_length=1)
    event_type: LobEventType
    reference_id: str | None = None
    date_created: dt.datetime | None = None
    body: dict[str, Any] = {}


def metadata_for(request: SubmitRequest) -> dict[str, str]:
    """Our reference + metadata within Lob's limits, or a permanent error naming the breach."""
    metadata = {str(k): str(v) for k, v in request.metadata.items()}
    # lookup() finds the piece by metadata[reference]: a caller's "reference" must not replace ours,
    # or reconciliation after the key expires finds nothing and a resubmit prints twice.
    if metadata.get("reference", request.reference) != request.reference:
        raise PrinterError(
            f"lob metadata 'reference' {metadata['reference']!r} differs from the submission's {request.reference!r}",
            permanent=True,
        )
    metadata = {"reference": request.reference, **metadata}
    if len(metadata) > MAX_METADATA_KEYS:
        raise PrinterError(f"lob metadata allows {MAX_METADATA_KEYS} keys, got {len(metadata)}", permanent=True)
    for key, value in metadata.items():
        if len(key) > 40 or len(value) > 500 or any(c in key + value for c in '"\\'):
            raise PrinterError(f"lob metadata {key!r}: keys <= 40, values <= 500 chars, no quotes", permanent=True)
    return metadata


def replayed_for_another_reference(data: Any, reference: str) -> bool:
    """True when Lob's answer is a postcard whose metadata names another reference:
    a replay of the key for a different submission, not our piece."""
    metadata = data.get("metadata") if isinstance(data, dict) else None
    theirs = metadata.get("reference") if isinstance(metadata, dict) else None
    return bool(theirs) and theirs != reference


def send_date_for(mail_date: dt.date | None, *, today: dt.date | None = None) -> str | None:
    """ISO date for a future mail date (Lob reads it as midnight UTC); None to mail now."""
    today = today or dt.datetime.now(dt.UTC).date()
    if mail_date is None or mail_date <= today:
        return None
    if (mail_date - today).days > MAX_SEND_AHEAD_DAYS:
        raise PrinterError(
            f"lob send_date {mail_date} is more than {MAX_SEND_AHEAD_DAYS} days ahead", permanent=True, code="send_date"
        )
    return mail_date.isoformat()


class LobPrinter(Printer):
    kind = PrinterKind.LOB
    webhook_headers = ("Lob-Signature", "Lob-Signature-Timestamp")
    webhook_id_field = "id"  # evt_...
    label = "Lob"
    approval_model = LobRecipientApproval
    status_map = STATUS_MAP
    countries = LOB_COUNTRIES
    sizes = SIZES
    default_base_url = "https://api.lob.com/v1"

    # ------------------------------------------------------------------ outbound
    def _call(self, method: str, path: str, *, headers: Mapping[str, str] | None = None, **kwargs: Any) -> Any:
        response = http.request(
            method,
            self.base_url + path,
            auth=(str(self.conf.get("api_key") or ""), ""),
            headers={"Lob-Version": LOB_VERSION, **(headers or {})},
            **kwargs,
        )
        http.raise_for_status(response, vendor="lob")
        return http.json_body(response, vendor="lob")

    def payload(self, request: SubmitRequest) -> dict[str, Any]:
        self.check_size(request.size)
        to = request.to
        address = {
            "name": to.name,
            "company": to.company,
            "address_line1": to.address1,
            "address_line2": to.address2,
            "address_city": to.city,
            "address_state": to.state,
            "address_zip": to.zip,
            "address_country": to.country,
        }
        body: dict[str, Any] = {
            "description": request.reference[:255],
            "to": {key: value for key, value in address.items() if value},
            "front": request.front,
            "back": request.back,
            "size": request.size,
            "use_type": "marketing",
            "metadata": metadata_for(request),
        }
        send_date = send_date_for(request.mail_date)
        if send_date:
            body["send_date"] = send_date
        return body

    def submit(self, request: SubmitRequest) -> Submission:
        # Lob replays a known key with 200 and the existing postcard, whatever the
        # body (vendors.md §1.3): a changed body under our key returns our piece.
        try:
            data = self._call(
                "POST", "/postcards", json=self.payload(request), headers={"Idempotency-Key": request.idempotency_key}
            )
        except PrinterError as exc:
            if says_key_reused(exc):  # undocumented at Lob; treated as Stannp's and Taylor's answers are
                return existing_after_key_reuse(self, request, exc)
            if exc.status_code != 409:
                raise
            # A conflict on create may be a request under the same key still in
            # flight: the piece may exist, so the outcome is unknown, not failed.
            raise PrinterError(exc.message, permanent=False, status_code=409, code=exc.code) from exc
        if replayed_for_another_reference(data, request.reference):
            # The key had made another reference's postcard: ours may not exist, so look it up.
            return existing_after_key_reuse(self, request, None)
        return self._submission(data, reference=request.reference)

    def lookup(self, reference: str) -> Submission | None:
        data = self._call("GET", "/postcards", params={"metadata[reference]": reference, "limit": 10})
        items = data.get("data", []) if isinstance(data, dict) else []
        for item in items:
            metadata = item.get("metadata") if isinstance(item, dict) else None
            if isinstance(metadata, dict) and metadata.get("reference") == reference and not item.get("deleted"):
                return self._submission(item, reference=reference)
        return None

    def lookup_report(self, submission: Submission) -> PrinterEvent | None:
        """What the postcard object says.  It has no single status field: ``status``
        is only the PDF render status (``processed`` | ``rendered`` | ``failed``),
        and the piece's progress is ``tracking_events`` (USPS scans, ascending by
        ``time``; never populated in test mode).  The report is the furthest scan
        (by our rank, the latest of equals, so a Re-Routed scan after In Local
        Area does not hide it), as the event type Lob fires for that scan, at the
        scan's ``time``.  A postcard without scans reports its render status as
        ``postcard.created`` / ``postcard.rendered_pdf`` / ``postcard.failed``,
        a deleted one ``postcard.deleted``, both without a time."""
        raw = submission.raw
        vendor_status, when = "", None
        if raw.get("deleted") is True:
            vendor_status = "postcard.deleted"
        else:
            event_types = {name: event_type for event_type, name in TRACKING_NAMES.items()}
            tracking = raw.get("tracking_events")
            best: tuple[int, dt.datetime] | None = None
            for item in tracking if isinstance(tracking, list) else []:
                event_type = event_types.get(str(item.get("name"))) if isinstance(item, dict) else None
                if event_type is None:
                    continue
                try:
                    at = aware(dt.datetime.fromisoformat(str(item.get("time") or "").replace("Z", "+00:00")))
                except ValueError:
                    at = None
                rank = (RANK.get(self.convert_status(event_type), -1), at or dt.datetime.min.replace(tzinfo=dt.UTC))
                if best is None or rank >= best:
                    best, vendor_status, when = rank, event_type, at
            if not vendor_status:
                render = {
                    "processed": "postcard.created",
                    "rendered": "postcard.rendered_pdf",
                    "failed": "postcard.failed",
                }
                vendor_status = render.get(str(raw.get("status") or ""), "")
        if not vendor_status:
            return None
        metadata = raw.get("metadata")
        reference = str(metadata.get("reference") or "") if isinstance(metadata, dict) else ""
        return self.lookup_event(submission, vendor_status, when, reference)

    def cancel(self, printer_id: str) -> None:
        self._call("DELETE", f"/postcards/{printer_id}")

    def _submission(self, data: Any, *, reference: str) -> Submission:
        if not isinstance(data, dict) or not str(data.get("id") or "").startswith("psc_"):
            # Transient: after a create the postcard may exist, and the retry under the same
            # key is replayed with it; an Error would invite a resubmit and a second print.
            raise PrinterError(f"lob answered without a postcard id: {str(data)[:200]}")
        return Submission(printer_id=data["id"], reference=reference, raw=data)

    # ------------------------------------------------------------------ webhooks
    def verify_webhook(self, request: WebhookRequest) -> None:
        secret = str(self.conf.get("webhook_secret") or "")
        if not secret:
            raise WebhookVerificationError("no Lob webhook secret is configured: refusing every webhook")
        timestamp = request.header("Lob-Signature-Timestamp")
        signing.check_timestamp(timestamp, self.conf.get("webhook_tolerance_s") or DEFAULT_TOLERANCE_S)
        assert timestamp is not None  # check_timestamp raised otherwise
        signed = timestamp.strip().encode() + b"." + request.body
        signing.check_hmac_hex(secret, signed, request.header("Lob-Signature"))

    def parse_webhook(self, raw: bytes, content_type: str = "application/json") -> list[PrinterEvent]:
        """One event per delivery.  Raises ``ValueError`` with a clear message on a malformed body."""
        event = load_webhook_body(LobEvent, raw, vendor="lob", what="a Lob event")
        printer_id = event.reference_id or str(event.body.get("id") or "")
        if not printer_id:
            raise ValueError(f"lob event {event.id} names no postcard (no reference_id, no body.id)")
        vendor_status = event.event_type.id
        metadata = event.body.get("metadata")  # absent on *.deleted bodies
        reference = str(metadata.get("reference") or "") if isinstance(metadata, dict) else ""
        return [
            PrinterEvent(
                printer_id=printer_id,
                vendor_status=vendor_status,
                status=self.convert_status(vendor_status),
                occurred_at=occurred_at(event),
                event_id=event.id,
                reference=reference,
                raw=ModelDump(event),
            )
        ]


def occurred_at(event: LobEvent) -> dt.datetime | None:
    """The scan time of the matching tracking event, else when Lob created the event."""
    name = TRACKING_NAMES.get(event.event_type.id)
    tracking = event.body.get("tracking_events")
    if name and isinstance(tracking, list):
        for item in reversed(tracking):  # ascending by time: the latest match wins
            if isinstance(item, dict) and item.get("name") == name and item.get("time"):
                try:
                    return aware(dt.datetime.fromisoformat(str(item["time"]).replace("Z", "+00:00")))
                except ValueError:
                    break
    return aware(event.date_created)
