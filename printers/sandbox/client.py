"""Sandbox: the default printer of a fresh install, served by the local simulator.

Our own small wire format (``docs/printers/sandbox.md``): JSON pieces under
``/sandbox/v1/pieces`` with an ``Idempotency-Key`` header, lookup by our
reference, cancel by DELETE, and webhooks signed ``X-Postcards-Signature:
t=<unix s>,v1=<hex hmac of "t.body">`` whose statuses are MailpieceStatus values.
"""

from __future__ import annotations

import datetime as dt
import hmac
from dataclasses import asdict
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

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
from printers.sandbox.approval import SANDBOX_COUNTRIES, SandboxRecipientApproval
from printers.sandbox.status import STATUS_MAP

SIGNATURE_HEADER = "X-Postcards-Signature"
DEFAULT_TOLERANCE_S = 300
DEFAULT_BASE_URL = "http://127.0.0.1:8765/sandbox/v1"


class SandboxPiece(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str = Field(min_length=1)
    reference: str = ""
    status: str = ""
    occurred_at: dt.datetime | None = None
    metadata: dict[str, str] = {}


class SandboxEvent(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str = Field(min_length=1)
    type: str
    data: SandboxPiece


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The header value for ``body`` (the simulator signs with this too)."""
    return f"t={timestamp},v1={signing.hmac_sha256_hex(secret, f'{timestamp}.'.encode() + body)}"


def parse_signature_header(value: str | None) -> tuple[str, list[str]]:
    """``(t, [v1, ...])`` from ``t=...,v1=...[,v1=...]``; raises when malformed."""
    if not value:
        raise WebhookVerificationError(f"missing {SIGNATURE_HEADER} header")
    timestamps, signatures = [], []
    for part in value.split(","):
        name, sep, item = part.strip().partition("=")
        if not sep or not item:
            raise WebhookVerificationError(f"malformed {SIGNATURE_HEADER} header")
        if name == "t":
            timestamps.append(item)
        elif name == "v1":
            signatures.append(item.lower())
    if len(timestamps) != 1 or not signatures:
        raise WebhookVerificationError(f"{SIGNATURE_HEADER} needs exactly one t= and at least one v1=")
    return timestamps[0], signatures


class SandboxPrinter(Printer):
    kind = PrinterKind.SANDBOX
    webhook_headers = (SIGNATURE_HEADER,)
    webhook_id_field = "id"
    label = "Sandbox (local simulator)"
    approval_model = SandboxRecipientApproval
    status_map = STATUS_MAP
    countries = SANDBOX_COUNTRIES
    requires_api_key = False
    default_base_url = DEFAULT_BASE_URL

    # ------------------------------------------------------------------ outbound
    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = http.request(method, self.base_url + path, **kwargs)
        http.raise_for_status(response, vendor="sandbox")
        return http.json_body(response, vendor="sandbox")

    def payload(self, request: SubmitRequest) -> dict[str, Any]:
        return {
            "reference": request.reference,
            "to": asdict(request.to),
            "front": request.front,
            "back": request.back,
            "size": request.size,
            "mail_date": request.mail_date.isoformat() if request.mail_date else None,
            "metadata": {str(k): str(v) for k, v in request.metadata.items()},
            "test": request.test,
        }

    def submit(self, request: SubmitRequest) -> Submission:
        data = self._call(
            "POST", "/pieces", json=self.payload(request), headers={"Idempotency-Key": request.idempotency_key}
        )
        return self._submission(data, reference=request.reference)

    def lookup(self, reference: str) -> Submission | None:
        data = self._call("GET", "/pieces", params={"reference": reference})
        for item in data.get("data", []) if isinstance(data, dict) else []:
            if isinstance(item, dict) and item.get("reference") == reference:
                return self._submission(item, reference=reference)
        return None

    def lookup_report(self, submission: Submission) -> PrinterEvent | None:
        """The piece's ``status`` (a MailpieceStatus value).  A piece from ``GET
        /pieces`` carries no time of that status (``created_at`` is the piece's),
        so ``occurred_at`` is read only when the object has one."""
        raw = submission.raw
        vendor_status = str(raw.get("status") or "").strip()
        if not vendor_status:
            return None
        when = None
        if isinstance(raw.get("occurred_at"), str):
            try:
                when = aware(dt.datetime.fromisoformat(raw["occurred_at"].replace("Z", "+00:00")))
            except ValueError:
                when = None
        return self.lookup_event(submission, vendor_status, when, str(raw.get("reference") or ""))

    def cancel(self, printer_id: str) -> None:
        self._call("DELETE", f"/pieces/{printer_id}")

    def _submission(self, data: Any, *, reference: str) -> Submission:
        if not isinstance(data, dict) or not data.get("id"):
            # Transient: the piece may exist, and a retry under the same key is replayed with it.
            raise PrinterError(f"sandbox answered without a piece id: {str(data)[:200]}")
        return Submission(printer_id=str(data["id"]), reference=reference, raw=data)

    # ------------------------------------------------------------------ webhooks
    def verify_webhook(self, request: WebhookRequest) -> None:
        secret = str(self.conf.get("webhook_secret") or "")
        if not secret:
            raise WebhookVerificationError("no sandbox webhook secret is configured: refusing every webhook")
        timestamp, candidates = parse_signature_header(request.header(SIGNATURE_HEADER))
        signing.check_timestamp(timestamp, self.conf.get("webhook_tolerance_s") or DEFAULT_TOLERANCE_S)
        expected = signing.hmac_sha256_hex(secret, f"{timestamp}.".encode() + request.body).encode()
        # Several v1 entries while a secret is being rotated: any one may match.
        if not any(hmac.compare_digest(expected, c.encode("utf-8", "replace")) for c in candidates):
            raise WebhookVerificationError("signature does not match the body")

    def parse_webhook(self, raw: bytes, content_type: str = "application/json") -> list[PrinterEvent]:
        """One event per delivery.  Raises ``ValueError`` with a clear message on a malformed body."""
        event = load_webhook_body(SandboxEvent, raw, vendor="sandbox", what="a sandbox event")
        piece = event.data
        return [
            PrinterEvent(
                printer_id=piece.id,
                vendor_status=piece.status,
                status=self.convert_status(piece.status),
                occurred_at=aware(piece.occurred_at),
                event_id=event.id,
                reference=piece.reference,
                raw=ModelDump(event),
            )
        ]
