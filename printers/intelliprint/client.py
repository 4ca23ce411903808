"""IntelliPrint (UK, Royal Mail): two-step print jobs and Svix-signed webhooks.

IntelliPrint has no idempotency keys, so a job is created unconfirmed under our
``reference`` and confirmed in a second call; ``submit`` first looks the
reference up, so a crash between the two calls never prints twice.  Wire facts
are in ``shared/docs/vendors.md`` §3; our choices in ``docs/printers/intelliprint.md``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict
from svix.webhooks import Webhook

from mailpieces.status import MailpieceStatus
from printers import http
from printers.base import (
    Printer,
    PrinterError,
    PrinterEvent,
    Submission,
    SubmitRequest,
    WebhookRequest,
    WebhookVerificationError,
    load_webhook_body,
)
from printers.intelliprint.approval import INTELLIPRINT_COUNTRIES, IntelliprintRecipientApproval
from printers.intelliprint.status import STATUS_MAP
from printers.kinds import PrinterKind

S = MailpieceStatus

# Sizes we accept, as IntelliPrint's postcard envelopes.
ENVELOPES = {"A6": "postcard_a6", "4x6": "postcard_a6", "A5": "postcard_a5", "6x9": "postcard_a5"}


class LetterReturned(BaseModel):
    date: int | None = None
    reason: str | None = None


class LetterUpdated(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str
    id: str = ""
    print_id: str = ""
    status: str = ""
    reference: str | None = ""
    shipped_date: int | None = None
    returned: LetterReturned | None = None


def _epoch(value: int | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        return dt.datetime.fromtimestamp(value, dt.UTC)
    except (OverflowError, OSError) as exc:  # 10**18 is no date: a malformed body, not a crash
        raise ValueError(f"intelliprint webhook timestamp {value} is out of range") from exc


class IntelliPrintPrinter(Printer):
    kind = PrinterKind.INTELLIPRINT
    label = "IntelliPrint"
    approval_model = IntelliprintRecipientApproval
    status_map = STATUS_MAP
    countries = INTELLIPRINT_COUNTRIES

    def __init__(self, conf: Mapping[str, Any]) -> None:
        self.conf = dict(conf)
        self.base_url = str(self.conf.get("base_url") or "").rstrip("/")

    # ------------------------------------------------------------------ outbound
    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.conf.get('api_key') or ''}"}
        response = http.request(method, self.base_url + path, headers=headers, **kwargs)
        http.raise_for_status(response, vendor="intelliprint")
        if not response.content:
            return {}
        try:
            return response.json()
        except ValueError:
            raise PrinterError(f"intelliprint answered HTTP {response.status_code} with a non-JSON body") from None

    def payload(self, request: SubmitRequest) -> dict[str, Any]:
        if request.size not in ENVELOPES:
            raise PrinterError(
                f"intelliprint postcard size must be one of {sorted(ENVELOPES)}, got {request.size!r}", permanent=True
            )
        to = request.to
        postage: dict[str, Any] = {"service": "uk_second_class", "ideal_envelope": ENVELOPES[request.size]}
        if request.mail_date:
            postage["mail_date"] = int(dt.datetime.combine(request.mail_date, dt.time(), dt.UTC).timestamp())
        # One complete address line, by IntelliPrint's rules.
        line = ", ".join(p for p in (to.company if to.name else "", to.address1, to.address2, to.city) if p)
        return {
            "type": "postcard",
            # IntelliPrint takes one file: the proof renderer makes it two-sided.
            "file": {"url": request.front},
            "recipients": [
                {
                    "address": {
                        "name": to.name or to.company,
                        "line": line,
                        "postcode": to.zip,
                        "country": to.country,
                    }
                }
            ],
            "postage": {k: v for k, v in postage.items() if v},
            "reference": request.reference,
            "metadata": dict(request.metadata),
            "testmode": request.test,
            "confirmed": False,
        }

    def submit(self, request: SubmitRequest) -> Submission:
        job = self._find(request.reference, testmode=request.test)
        if job is None:
            job = self._call("POST", "/prints", json=self.payload(request))
        if not job.get("confirmed"):
            # The step a crash may have skipped: confirming twice is harmless,
            # creating twice would print twice.
            print_id = self._id(job)
            try:
                job = self._call("POST", f"/prints/{print_id}", json={"confirmed": True})
            except PrinterError as exc:
                if "already_confirmed" not in exc.code:
                    raise
                # Another attempt confirmed it meanwhile: that is our success.
                job = self._call("GET", f"/prints/{print_id}")
        return self._submission(job)

    def lookup(self, reference: str) -> Submission | None:
        # Testmode jobs are hidden unless asked for: look in both.
        job = self._find(reference, testmode=False) or self._find(reference, testmode=True)
        return self._submission(job) if job else None

    def cancel(self, printer_id: str) -> None:
        self._call("DELETE", f"/prints/{printer_id}")

    def _find(self, reference: str, *, testmode: bool) -> dict[str, Any] | None:
        params = {"reference": reference, "testmode": "true" if testmode else "false"}
        found = self._call("GET", "/prints", params=params)
        jobs = [job for job in found.get("data", []) if isinstance(job, dict) and job.get("reference") == reference]
        # A confirmed job wins; otherwise the oldest unconfirmed one is finished.
        jobs.sort(key=lambda job: (not job.get("confirmed"), job.get("created") or 0))
        return jobs[0] if jobs else None

    def _id(self, job: Any) -> str:
        if not isinstance(job, dict) or not str(job.get("id") or "").startswith("print_"):
            raise PrinterError(f"intelliprint answered without a print id: {job!r}", permanent=True)
        return str(job["id"])

    def _submission(self, job: dict[str, Any]) -> Submission:
        letters = [str(letter.get("id")) for letter in job.get("letters") or [] if isinstance(letter, dict)]
        return Submission(
            printer_id=self._id(job),
            reference=str(job.get("reference") or ""),
            raw=job,
            extra_ids={"letter_ids": ",".join(letters)} if letters else {},
        )

    # ------------------------------------------------------------------ webhooks
    def verify_webhook(self, request: WebhookRequest) -> None:
        secret = str(self.conf.get("webhook_secret") or "")
        if not secret:
            raise WebhookVerificationError("no IntelliPrint webhook secret is configured: refusing every webhook")
        try:
            Webhook(secret).verify(request.body, dict(request.headers))
        except Exception as exc:
            # svix raises its own error, but also ValueError/binascii.Error on a
            # malformed header or secret: every one of them is a rejection.
            raise WebhookVerificationError(f"svix verification failed: {type(exc).__name__}: {exc}") from exc

    def parse_webhook(self, raw: bytes, content_type: str = "application/json") -> list[PrinterEvent]:
        """One event per ``letter.updated``; other event types give ``[]``.

        The event id is letter:status[:when]; the body has no event id, so the
        webhook view should dedupe on the ``svix-id`` header when it has it.
        Raises ``ValueError`` with a clear message on a malformed body.
        """
        letter = load_webhook_body(LetterUpdated, raw, vendor="intelliprint", what="an IntelliPrint event")
        if letter.type != "letter.updated":
            return []
        if not letter.id or not letter.print_id or not letter.status:
            raise ValueError("intelliprint letter.updated names no letter id, print_id or status")
        returned = letter.returned.date if letter.returned else None
        when = _epoch(returned) if letter.status == "returned" and returned else _epoch(letter.shipped_date)
        if letter.status not in ("shipping", "sent", "returned"):
            when = None  # shipped_date is not the time of an earlier status
        stamp = f":{int(when.timestamp())}" if when else ""
        return [
            PrinterEvent(
                printer_id=letter.print_id,
                vendor_status=letter.status,
                status=self.convert_status(letter.status),
                occurred_at=when,
                event_id=f"{letter.id}:{letter.status}{stamp}",
                reference=letter.reference or "",
                raw=letter.model_dump(),
            )
        ]
