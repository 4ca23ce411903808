"""Stannp (UK, US, CA): form-encoded postcards, 409 idempotent replays, batched webhooks.

Wire facts are in ``shared/docs/vendors.md`` §2; our choices in ``docs/printers/stannp.md``.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, quote

from pydantic import BaseModel, ConfigDict, field_validator

from mailpieces.status import MailpieceStatus
from printers import http, signing
from printers.base import (
    Printer,
    PrinterError,
    PrinterEvent,
    Submission,
    SubmitRequest,
    WebhookRequest,
    load_webhook_body,
)
from printers.kinds import PrinterKind
from printers.stannp.approval import STANNP_COUNTRIES, StannpRecipientApproval
from printers.stannp.status import STATUS_MAP

S = MailpieceStatus

# UK/EU and US/CA formats; a key works in one region only, so the region's API rejects the others.
SIZES = frozenset({"A6", "A5", "A5-ENV", "A5-PORT", "4x6", "6x9", "6x11"})
SIGNATURE_HEADERS = ("X-Stannp-Signature", "X-Stannp-Sigature")  # the second is a typo in Stannp's older docs
# How far back lookup() searches the reporting list; our keys live 24 h, a
# reconcile after that is days late at most.
LOOKUP_DAYS = 90


class StannpPiece(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str
    status: str = ""
    tags: str | None = ""

    @field_validator("id", "status", mode="before")
    @classmethod
    def _text(cls, value: Any) -> str:
        # Ids arrive as "123" or 123; keep them as strings.
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise ValueError("must be a string or an integer")
        return str(value).strip()


class StannpEnvelope(BaseModel):
    model_config = ConfigDict(extra="allow")

    webhook_id: int | str | None = None
    event: str
    created: str | None = None
    retries: int | str | None = None  # "0" or 0
    mailpieces: list[StannpPiece] = []


def parse_created(value: str | None) -> dt.datetime | None:
    """Stannp's zone-less "YYYY-MM-DD HH:MM:SS" as UTC; None for blanks and "0000-00-00 …"."""
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def form_to_nested(body: str) -> dict[str, Any]:
    """``a[0][b]=x`` form fields as ``{"a": [{"b": "x"}]}`` (Stannp's form content type)."""
    root: dict[str, Any] = {}
    for key, value in parse_qsl(body, keep_blank_values=True):
        parts = key.replace("]", "").split("[")
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"form field {key!r} clashes with a plain field")
        node[parts[-1]] = value
    nested = _listify(root)
    if not isinstance(nested, dict):
        raise ValueError("form body has no named fields")
    return nested


def _listify(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    items = {key: _listify(item) for key, item in value.items()}
    if items and all(key.isdigit() for key in items):
        return [items[key] for key in sorted(items, key=int)]
    return items


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
    label = "Stannp"
    approval_model = StannpRecipientApproval
    status_map = STATUS_MAP
    countries = STANNP_COUNTRIES

    def __init__(self, conf: Mapping[str, Any]) -> None:
        self.conf = dict(conf)
        self.base_url = str(self.conf.get("base_url") or "").rstrip("/")

    # ------------------------------------------------------------------ outbound
    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        auth = (str(self.conf.get("api_key") or ""), "")
        response = http.request(method, self.base_url + path, auth=auth, **kwargs)
        # A 409 replays the original answer of an identical request: success.
        if response.status_code != 409:
            http.raise_for_status(response, vendor="stannp")
        try:
            body = response.json()
        except ValueError:
            raise PrinterError(f"stannp answered HTTP {response.status_code} with a non-JSON body") from None
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
        if request.size not in SIZES:
            raise PrinterError(
                f"stannp postcard size must be one of {sorted(SIZES)}, got {request.size!r}", permanent=True
            )
        data = self._call(
            "POST",
            "/postcards/create",
            data=self.payload(request),
            headers={"X-Idempotency-Key": request.idempotency_key},
        )
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

    def cancel(self, printer_id: str) -> None:
        self._call("POST", "/postcards/cancel", data={"id": printer_id})

    def _submission(self, data: Any, *, reference: str) -> Submission:
        if not isinstance(data, dict) or data.get("id") in (None, ""):
            raise PrinterError(f"stannp answered without a mailpiece id: {data!r}", permanent=True)
        return Submission(printer_id=str(data["id"]), reference=reference, raw=data)

    # ------------------------------------------------------------------ webhooks
    def verify_webhook(self, request: WebhookRequest) -> None:
        # No timestamp is signed (vendors.md §2.3): dedupe is the only replay guard.
        signature = next((s for s in map(request.header, SIGNATURE_HEADERS) if s), None)
        signing.check_hmac_hex(str(self.conf.get("webhook_secret") or ""), request.body, signature)

    def parse_webhook(self, raw: bytes, content_type: str = "application/json") -> list[PrinterEvent]:
        """One event per mailpiece; ``test_url`` and non-mailpiece events give ``[]``.

        Raises ``ValueError`` with a clear message on a malformed body.
        """
        try:
            text = raw.decode("utf-8")
            body = form_to_nested(text) if "form-urlencoded" in content_type.lower() else json.loads(text)
        except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError included
            raise ValueError(f"stannp webhook body is not JSON or form data: {exc}") from exc
        except RecursionError:  # "[[[[…" or "a[x[x[x…" thousands deep
            raise ValueError("stannp webhook body is nested too deeply to be a Stannp envelope") from None
        envelope = load_webhook_body(StannpEnvelope, body, vendor="stannp", what="a Stannp envelope")
        if envelope.event != "mailpiece_status":
            return []
        occurred_at = parse_created(envelope.created)
        return [
            PrinterEvent(
                printer_id=piece.id,
                vendor_status=piece.status,
                status=self.convert_status(piece.status),
                occurred_at=occurred_at,
                event_id=f"{piece.id}:{piece.status}",
                reference=str(piece.tags or "").split(",")[0].strip(),
                raw=piece.model_dump(),
            )
            for piece in envelope.mailpieces
        ]
