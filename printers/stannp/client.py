"""Stannp (UK, US, CA): form-encoded postcards, 409 idempotent replays, batched webhooks.

Wire facts are in ``shared/docs/vendors.md`` §2; our choices in ``docs/printers/stannp.md``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import quote

from printers import http, signing
from printers.base import Printer, PrinterError, PrinterEvent, Submission, SubmitRequest, WebhookRequest
from printers.kinds import PrinterKind
from printers.replays import existing_after_key_reuse, says_key_reused
from printers.stannp.approval import STANNP_COUNTRIES, StannpRecipientApproval
from printers.stannp.status import STATUS_MAP
from printers.stannp.webhooks import decode_body, item_events, mailpiece_items

# UK/EU and US/CA formats; a key works in one region only, so the region's API rejects the others.
SIZES = frozenset({"A6", "A5", "A5-ENV", "A5-PORT", "4x6", "6x9", "6x11"})
SIGNATURE_HEADERS = ("X-Stannp-Signature", "X-Stannp-Sigature")  # the second is a typo in Stannp's older docs
# How far back lookup() searches the reporting list; our keys live 24 h, a
# reconcile after that is days late at most.
LOOKUP_DAYS = 90


def recipient_fields(request: SubmitRequest) -> dict[str, str]:
    to = request.to
    first, _, last = to.name.strip().rpartition(" ")
    fields = {
        "firstname": first or last,
        "lastname": last if first else "",
        "company": to.company,
        "address1": to.address1,
        "address2": to.address2,
        "city": to.city,
        "state": to.state,
        # Stannp names the postal code by region.
        ("zipcode" if to.country in ("US", "CA") else "postcode"): to.zip,
        "country": to.country,
    }
    return {f"recipient[{key}]": value for key, value in fields.items() if value}


class StannpPrinter(Printer):
    kind = PrinterKind.STANNP
    # No event id and no signed timestamp: the inbox keys a delivery by its body's hash.
    webhook_headers = SIGNATURE_HEADERS
    label = "Stannp"
    approval_model = StannpRecipientApproval
    status_map = STATUS_MAP
    countries = STANNP_COUNTRIES
    sizes = SIZES

    # ------------------------------------------------------------------ outbound
    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        auth = (str(self.conf.get("api_key") or ""), "")
        response = http.request(method, self.base_url + path, auth=auth, **kwargs)
        # A 409 replays the original answer of an identical request: success.
        if response.status_code != 409:
            http.raise_for_status(response, vendor="stannp")
        body = http.json_body(response, vendor="stannp")
        if body == {}:
            # Stannp always answers with an envelope: an empty body says nothing, least of all
            # "refused", and after a create the piece may exist, so the retry keeps the key.
            raise PrinterError(f"stannp answered HTTP {response.status_code} with an empty body")
        if not isinstance(body, dict) or body.get("success") is not True:
            error = body.get("error") if isinstance(body, dict) else None
            raise PrinterError(f"stannp refused the request: {error or body!r}", permanent=True)
        return body.get("data")

    def payload(self, request: SubmitRequest) -> dict[str, str]:
        """The form body, built deterministically: Stannp replays only byte-identical bodies."""
        tags = [request.reference, *(f"{k}={v}" for k, v in sorted(request.metadata.items()))]
        return {
            "size": request.size,
            "test": "1" if request.test else "0",  # PHP reads the string "false" as true
            "front": request.front,
            "back": request.back,
            "tags": ",".join(tag.replace(",", " ") for tag in tags),
            **recipient_fields(request),
        }

    def submit(self, request: SubmitRequest) -> Submission:
        self.check_size(request.size)
        try:
            data = self._call(
                "POST",
                "/postcards/create",
                data=self.payload(request),
                headers={"X-Idempotency-Key": request.idempotency_key},
            )
        except PrinterError as exc:
            # A changed body under a known key: Stannp answers 400, but the piece exists.
            if not says_key_reused(exc):
                raise
            return existing_after_key_reuse(self, request, exc)
        return self._submission(data, reference=request.reference)

    def lookup(self, reference: str) -> Submission | None:
        today = dt.datetime.now(dt.UTC).date()
        start, end = today - dt.timedelta(days=LOOKUP_DAYS), today + dt.timedelta(days=1)
        # The tag filter may match loosely: keep only exact tag matches.
        data = self._call("GET", f"/reporting/list/{start}/{end}/all/{quote(reference, safe='')}")
        singles = data.get("singles", []) if isinstance(data, dict) else []
        for item in singles:
            if isinstance(item, dict) and reference in (t.strip() for t in str(item.get("tags") or "").split(",")):
                return self._submission(item, reference=reference)
        return None

    def lookup_report(self, submission: Submission) -> PrinterEvent | None:
        """The mailpiece object's ``status`` (``/reporting/list`` singles and
        ``/postcards/get`` share its shape: ``{id, timestamp, status, dispatched,
        tags, …}``).  It gives no time of that status (``timestamp`` is when the
        piece was created; ``dispatched`` is undocumented beyond null), so the
        report has none."""
        vendor_status = str(submission.raw.get("status") or "").strip()
        if not vendor_status:
            return None
        return self.lookup_event(submission, vendor_status)

    def cancel(self, printer_id: str) -> None:
        self._call("POST", "/postcards/cancel", data={"id": printer_id})

    def _submission(self, data: Any, *, reference: str) -> Submission:
        if not isinstance(data, dict) or data.get("id") in (None, ""):
            # Transient: the piece may exist, and a retry under the same key is replayed with it.
            raise PrinterError(f"stannp answered without a mailpiece id: {str(data)[:200]}")
        return Submission(printer_id=str(data["id"]), reference=reference, raw=data)

    # ------------------------------------------------------------------ webhooks
    def verify_webhook(self, request: WebhookRequest) -> None:
        # No timestamp is signed (vendors.md §2.3): dedupe is the only replay guard.
        signature = next((s for s in map(request.header, SIGNATURE_HEADERS) if s), None)
        signing.check_hmac_hex(str(self.conf.get("webhook_secret") or ""), request.body, signature)

    def parse_webhook(self, raw: bytes, content_type: str = "application/json") -> list[PrinterEvent]:
        """One event per mailpiece item, in order; an odd item gives a problem event
        (``printers/stannp/webhooks.py``).  ``test_url`` and campaign or recipient events
        give ``[]``.  Raises ``ValueError`` with a clear message when the body as a whole
        cannot be read (the webhook layer quarantines it)."""
        body = decode_body(raw, content_type)
        envelope, items = mailpiece_items(body)
        return item_events(items, created=envelope.created, convert=self.convert_status)
