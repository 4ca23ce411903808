"""Taylor: numeric status codes, and a wire format of our own.

Taylor publishes no API documentation, so ``docs/printers/taylor.md`` defines
the contract this module speaks (JSON create with an ``Idempotency-Key``,
lookup by reference, DELETE to cancel, webhooks signed ``t=..,v1=..``).  The
code -> status table is the spec's, overridable per deployment in
``settings.PRINTERS_CONF["taylor"]["status_map"]``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from django.conf import settings
from pydantic import BaseModel, ConfigDict, field_validator

from mailpieces.status import MailpieceStatus
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
from printers.replays import existing_after_key_reuse, says_key_reused
from printers.taylor.approval import TAYLOR_COUNTRIES, TaylorRecipientApproval
from printers.taylor.status import STATUS_MAP, load_status_map, status_code

S = MailpieceStatus

SIZES = frozenset({"4x6", "6x9", "6x11"})
SIGNATURE_HEADER = "X-Taylor-Signature"
DEFAULT_TOLERANCE_S = 300.0


class TaylorEvent(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str
    mailpiece_id: str
    status: str
    reference: str | None = ""
    occurred_at: dt.datetime | None = None

    @field_validator("id", "mailpiece_id", "status", mode="before")
    @classmethod
    def _text(cls, value: Any) -> str:
        if isinstance(value, bool) or not isinstance(value, str | int) or not str(value).strip():
            raise ValueError("must be a non-empty string or an integer")
        return str(value).strip()


def parse_signature_header(value: str | None) -> tuple[str, list[str]]:
    """``t=<epoch>,v1=<hex>[,v1=<hex>…]`` as (timestamp, signatures); raises when malformed."""
    if not value:
        raise WebhookVerificationError(f"missing {SIGNATURE_HEADER} header")
    timestamp, signatures = "", []
    for item in value.split(","):
        key, sep, val = item.strip().partition("=")
        if not sep or not val:
            raise WebhookVerificationError(f"malformed {SIGNATURE_HEADER} header")
        if key == "t":
            timestamp = val
        elif key == "v1":
            signatures.append(val)
    if not timestamp or not signatures:
        raise WebhookVerificationError(f"{SIGNATURE_HEADER} needs t= and at least one v1=")
    return timestamp, signatures


class TaylorPrinter(Printer):
    kind = PrinterKind.TAYLOR
    webhook_headers = (SIGNATURE_HEADER,)
    webhook_id_field = "id"
    label = "Taylor"
    approval_model = TaylorRecipientApproval
    status_map = STATUS_MAP  # the spec's defaults; convert_status applies the settings override
    countries = TAYLOR_COUNTRIES
    sizes = SIZES

    def __init__(self, conf: Mapping[str, Any]) -> None:
        super().__init__(conf)
        load_status_map(self.conf.get("status_map"))  # a bad table fails here, loudly, not per webhook

    @classmethod
    def convert_status(cls, vendor_status: str) -> MailpieceStatus:
        # Read at call time (never at import): the table is deployment configuration.
        override = settings.PRINTERS_CONF.get("taylor", {}).get("status_map")
        return load_status_map(override).get(status_code(vendor_status), S.UNKNOWN)

    # ------------------------------------------------------------------ outbound
    def _call(self, method: str, path: str, *, headers: Mapping[str, str] | None = None, **kwargs: Any) -> Any:
        auth = {"Authorization": f"Bearer {self.conf.get('api_key') or ''}"}
        response = http.request(method, self.base_url + path, headers={**auth, **(headers or {})}, **kwargs)
        http.raise_for_status(response, vendor="taylor")
        return http.json_body(response, vendor="taylor")

    def payload(self, request: SubmitRequest) -> dict[str, Any]:
        self.check_size(request.size)
        return {
            "reference": request.reference,
            "size": request.size,
            "mail_date": request.mail_date.isoformat() if request.mail_date else None,
            "test": request.test,
            "to": asdict(request.to),
            "front": request.front,
            "back": request.back,
            "metadata": dict(request.metadata),
        }

    def submit(self, request: SubmitRequest) -> Submission:
        try:
            piece = self._call(
                "POST", "/mailpieces", json=self.payload(request), headers={"Idempotency-Key": request.idempotency_key}
            )
        except PrinterError as exc:
            if not says_key_reused(exc):
                raise
            # The key already made a piece (our contract's 422): the piece exists, so this is
            # no failure; an Error would invite a resubmit under a new key and a second print.
            return existing_after_key_reuse(self, request, exc)
        return self._submission(piece)

    def lookup(self, reference: str) -> Submission | None:
        found = self._call("GET", "/mailpieces", params={"reference": reference})
        items = found.get("data", []) if isinstance(found, dict) else []
        matches = [item for item in items if isinstance(item, dict) and item.get("reference") == reference]
        return self._submission(matches[0]) if matches else None

    def lookup_report(self, submission: Submission) -> PrinterEvent | None:
        """The mailpiece's numeric ``status`` (``{id, reference, status, created_at}``,
        docs/printers/taylor.md), read as the webhooks read it.  The object gives no
        time of that status, so the report has none.  Code 0 (accepted) maps to
        nothing and is recorded, never applied."""
        value = submission.raw.get("status")
        if value is None or isinstance(value, bool) or not str(value).strip():
            return None
        code = status_code(value)
        return self.lookup_event(submission, code)

    def cancel(self, printer_id: str) -> None:
        self._call("DELETE", f"/mailpieces/{printer_id}")

    def _submission(self, piece: Any) -> Submission:
        if not isinstance(piece, dict) or not piece.get("id"):
            # Transient: the piece may exist, and a retry under the same key is replayed with it.
            raise PrinterError(f"taylor answered without a mailpiece id: {str(piece)[:200]}")
        return Submission(printer_id=str(piece["id"]), reference=str(piece.get("reference") or ""), raw=piece)

    # ------------------------------------------------------------------ webhooks
    def verify_webhook(self, request: WebhookRequest) -> None:
        secret = str(self.conf.get("webhook_secret") or "")
        if not secret:
            raise WebhookVerificationError("no Taylor webhook secret is configured: refusing every webhook")
        timestamp, signatures = parse_signature_header(request.header(SIGNATURE_HEADER))
        signing.check_timestamp(timestamp, self.conf.get("webhook_tolerance_s") or DEFAULT_TOLERANCE_S)
        signed = timestamp.encode() + b"." + request.body
        for signature in signatures:  # several v1 entries while a secret is rotated
            try:
                signing.check_hmac_hex(secret, signed, signature)
            except WebhookVerificationError:
                continue
            return
        raise WebhookVerificationError("no Taylor signature matches the body")

    def parse_webhook(self, raw: bytes, content_type: str = "application/json") -> list[PrinterEvent]:
        """One event per delivery.  Raises ``ValueError`` with a clear message on a malformed body."""
        event = load_webhook_body(TaylorEvent, raw, vendor="taylor", what="a Taylor event")
        code = status_code(event.status)
        return [
            PrinterEvent(
                printer_id=event.mailpiece_id,
                vendor_status=code,
                status=self.convert_status(code),
                occurred_at=aware(event.occurred_at),
                event_id=event.id,
                reference=event.reference or "",
                raw=ModelDump(event),
            )
        ]
