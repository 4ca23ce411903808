"""Simulated Lob: ``/lob/v1/postcards`` create / list / get / delete and signed event webhooks.

Close enough to vendors.md §1 for our client: Basic auth required, Idempotency-Key
replays return the original postcard with 200, JSON or form bodies, 422s with
Lob's error codes for the rules our tests exercise.  Magic: an ``address_line1``
containing "undeliverable" fails with ``failed_deliverability_strictness``.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs

from printers.lob.status import TRACKING_NAMES
from printers.signing import hmac_sha256_hex
from printers.simulator.core import Piece, VendorHandler, WebhookEvent

Response = tuple[int, dict[str, str], bytes]
# Lob's pattern ^\d{5}(-\d{4})?$ is an OpenAPI (ECMA) one: \d means ASCII digits there.
ZIP = re.compile(r"\A[0-9]{5}(-[0-9]{4})?\Z")
SIZES = ("4x6", "6x9", "6x11")


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class LobHandler(VendorHandler):
    name = "lob"
    lifecycle = (
        "postcard.created",
        "postcard.rendered_pdf",
        "postcard.mailed",
        "postcard.in_transit",
        "postcard.in_local_area",
        "postcard.processed_for_delivery",
        "postcard.delivered",
    )

    def handle(
        self, method: str, path: str, query: dict[str, list[str]], headers: Mapping[str, str], body: bytes
    ) -> Response:
        if not self._authorized(headers):
            return self.error(
                401, "Your API key is not valid. Please sign up on lob.com to get a valid api key.", "unauthorized"
            )
        parts = [p for p in path.split("/") if p]
        if parts[:2] != ["v1", "postcards"] or len(parts) > 3:
            return self.error(404, f"{method} {path} is not a simulated Lob route", "not_found")
        if len(parts) == 2 and method == "POST":
            return self._create(query, headers, body)
        if len(parts) == 2 and method == "GET":
            return self._list(query)
        piece = self.store.piece(self.name, parts[2]) if len(parts) == 3 else None
        if piece is None:
            return self.error(404, "postcard not found", "not_found")
        if method == "GET":
            return self.json_response(200, self._postcard(piece))
        if method == "DELETE":
            if piece.cancelled:
                return self.error(404, "postcard not found", "not_found")
            if piece.status not in ("", "postcard.created", "postcard.rendered_pdf", "postcard.rendered_thumbnails"):
                return self.error(422, "postcard can no longer be cancelled", "conflict")
            self.store.update(self.name, piece.id, cancelled=True, physical=False, status="postcard.deleted")
            return self.json_response(200, {"id": piece.id, "deleted": True})
        return self.error(405, f"{method} not allowed", "bad_request")

    @staticmethod
    def _authorized(headers: Mapping[str, str]) -> bool:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            username = base64.b64decode(token).decode().partition(":")[0]
        except ValueError:
            return False
        return bool(username)

    def _create(self, query: dict[str, list[str]], headers: Mapping[str, str], body: bytes) -> Response:
        key = headers.get("idempotency-key")
        if key and "idempotency_key" in query:
            return self.error(422, "send the idempotency key as a header or a query parameter, not both", "invalid")
        key = key or (query.get("idempotency_key") or [""])[0] or None
        if key and len(key) > 256:
            return self.error(422, "idempotency key must be at most 256 characters", "invalid")
        try:
            data = self._parse(headers.get("content-type", ""), body)
        except ValueError as exc:
            return self.error(400, f"malformed body: {exc}", "bad_request")
        problem = self._validate(data)
        if problem:
            return self.error(422, problem[1], problem[0])
        metadata = {str(k): str(v) for k, v in (data.get("metadata") or {}).items()}

        def build() -> Piece:
            return Piece(
                vendor=self.name,
                id=self.store.new_id("psc_"),
                reference=metadata.get("reference", ""),
                metadata=metadata,
                request=data,
                status="postcard.created",
            )

        piece, _replay = self.store.create_or_replay(self.name, key=key, build=build)
        return self.json_response(200, self._postcard(piece))

    @staticmethod
    def _parse(content_type: str, body: bytes) -> dict[str, Any]:
        if "application/json" in content_type:
            data = json.loads(body.decode())
            if not isinstance(data, dict):
                raise ValueError("expected a JSON object")
            return data
        nested: dict[str, Any] = {}  # form: to[name]=...
        for key, values in parse_qs(body.decode(), keep_blank_values=True).items():
            outer, _, inner = key.partition("[")
            if inner:
                nested.setdefault(outer, {})[inner.rstrip("]")] = values[0]
            else:
                nested[key] = values[0]
        return nested

    def _validate(self, data: dict[str, Any]) -> tuple[str, str] | None:
        for name in ("to", "front", "back"):
            if not data.get(name):
                return "invalid", f"{name} is required"
        if data.get("use_type") not in ("marketing", "operational"):
            return "mail_use_type_can_not_be_null", "use_type must be marketing or operational"
        if data.get("size", "4x6") not in SIZES:
            return "invalid", f"size must be one of {', '.join(SIZES)}"
        to = data["to"]
        if not isinstance(to, dict):
            return "invalid", "to must be an address object"
        if not (to.get("name") or to.get("company")):
            return "invalid", "to.name or to.company is required"
        line1, line2 = str(to.get("address_line1") or ""), str(to.get("address_line2") or "")
        if not line1 or not to.get("address_city") or len(str(to.get("address_state") or "")) != 2:
            return "invalid", "to needs address_line1, address_city and a 2-letter address_state"
        if not ZIP.match(str(to.get("address_zip") or "")):
            return "invalid", "to.address_zip must match ^\\d{5}(-\\d{4})?$"
        if len(line1) + len(line2) > 50:
            return "address_length_exceeds_limit", "address_line1 and address_line2 together exceed 50 characters"
        if "undeliverable" in line1.lower():
            return "failed_deliverability_strictness", "address is undeliverable under the account's strictness"
        metadata = data.get("metadata") or {}
        if not isinstance(metadata, dict) or len(metadata) > 20:
            return "invalid", "metadata must be an object with at most 20 keys"
        if any(
            not isinstance(v, str) or len(v) > 500 or len(str(k)) > 40 or any(c in f"{k}{v}" for c in '"\\')
            for k, v in metadata.items()
        ):
            return "invalid", 'metadata keys <= 40 chars, values strings <= 500 chars, neither with " or \\'

        send_date = data.get("send_date")
        if send_date:
            try:
                when = dt.datetime.fromisoformat(str(send_date).replace("Z", "+00:00"))
            except ValueError:
                return "invalid", "send_date must be ISO 8601"
            when = when if when.tzinfo else when.replace(tzinfo=dt.UTC)
            if when - dt.datetime.now(dt.UTC) > dt.timedelta(days=180):
                return "invalid", "send_date must be at most 180 days in the future"
        return None

    def _list(self, query: dict[str, list[str]]) -> Response:
        filters = {k[len("metadata[") : -1]: v[0] for k, v in query.items() if k.startswith("metadata[")}
        items = [
            self._postcard(p)
            for p in sorted(self.store.pieces(self.name), key=lambda p: p.created_at, reverse=True)
            if all(p.metadata.get(k) == v for k, v in filters.items())
        ]
        limit = int((query.get("limit") or ["10"])[0])
        return self.json_response(200, {"data": items[:limit], "object": "list", "count": min(limit, len(items))})

    def _postcard(self, piece: Piece) -> dict[str, Any]:
        created = _iso(dt.datetime.fromtimestamp(piece.created_at, tz=dt.UTC))
        request = piece.request or {}
        return {
            "id": piece.id,
            "object": "postcard",
            "description": request.get("description"),
            "to": {"id": f"adr_{piece.id[4:]}", "object": "address", **request.get("to", {})},
            "from": None,
            "url": f"https://lob-assets.example/{piece.id}.pdf?expires=1",
            "size": request.get("size", "4x6"),
            "mail_type": "usps_first_class",
            "use_type": request.get("use_type"),
            "metadata": piece.metadata,
            "send_date": request.get("send_date") or created,
            "date_created": created,
            "date_modified": created,
            "tracking_events": piece.extra.get("tracking_events", []),
            "status": "rendered",
            "deleted": piece.cancelled,
        }

    def webhook(self, piece: Piece, event: WebhookEvent) -> tuple[bytes, dict[str, str]]:
        status = event.status
        if status.endswith(".deleted"):
            body: dict[str, Any] = {"id": piece.id, "deleted": True}  # no metadata (vendors.md §1.5)
        else:
            name = TRACKING_NAMES.get(status)
            if name:
                tracking = piece.extra.setdefault("tracking_events", [])
                tracking.append(
                    {
                        "id": self.store.new_id("evnt_"),
                        "type": "normal",
                        "name": name,
                        "location": None if name == "Mailed" else "94107",
                        "time": _iso(event.occurred_at),
                        "details": None,
                        "object": "tracking_event",
                    }
                )
                tracking.sort(key=lambda t: t["time"])
            body = self._postcard(piece)
        envelope = {
            "id": event.id,
            "object": "event",
            "date_created": _iso(event.occurred_at),
            "event_type": {"id": status, "resource": "postcards", "enabled_for_test": True, "object": "event_type"},
            "reference_id": piece.id,
            "body": body,
        }
        raw = json.dumps(envelope).encode()
        # Milliseconds, as Lob sends them; wall clock (not the simulator's), since
        # the receiver checks it against its own clock.
        timestamp = str(int(time.time() * 1000))
        signature = hmac_sha256_hex(self.secret, timestamp.encode() + b"." + raw)
        return raw, {
            "Content-Type": "application/json",
            "Lob-Signature": signature,
            "Lob-Signature-Timestamp": timestamp,
        }
