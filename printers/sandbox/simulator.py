"""Simulated sandbox printer: ``/sandbox/v1/pieces`` in our own wire format (docs/printers/sandbox.md).

Magic: an ``address1`` containing "reject" is refused with 422 ``address_rejected``
(a permanent error for tests and demos).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Mapping
from typing import Any

from printers.sandbox.client import sign
from printers.simulator.core import Piece, VendorHandler, WebhookEvent

Response = tuple[int, dict[str, str], bytes]
REQUIRED = ("reference", "to", "front", "back")
CANCELLABLE = ("Submitted", "Received")


def _iso(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, tz=dt.UTC).isoformat()


class SandboxHandler(VendorHandler):
    name = "sandbox"
    lifecycle = ("Received", "Producing", "HandedOver", "InTransit", "LocalDelivery", "Delivered")

    def error_body(self, status: int, message: str, code: str) -> bytes:
        return json.dumps({"error": {"code": code, "message": message}}).encode()

    def handle(
        self, method: str, path: str, query: dict[str, list[str]], headers: Mapping[str, str], body: bytes
    ) -> Response:
        parts = [p for p in path.split("/") if p]
        if parts[:2] != ["v1", "pieces"] or len(parts) > 3:
            return self.error(404, f"{method} {path} is not a sandbox route", "not_found")
        if len(parts) == 2 and method == "POST":
            return self._create(headers, body)
        if len(parts) == 2 and method == "GET":
            reference = (query.get("reference") or [""])[0]
            items = [self._piece(p) for p in self.store.pieces(self.name) if not reference or p.reference == reference]
            return self.json_response(200, {"data": items})
        piece = self.store.piece(self.name, parts[2]) if len(parts) == 3 else None
        if piece is None:
            return self.error(404, "no such piece", "not_found")
        if method == "GET":
            return self.json_response(200, self._piece(piece))
        if method == "DELETE":
            if piece.status not in CANCELLABLE:
                return self.error(409, f"piece is {piece.status}: too late to cancel", "not_cancellable")
            piece = self.store.update(self.name, piece.id, status="Cancelled", cancelled=True, physical=False)
            return self.json_response(200, self._piece(piece))
        return self.error(405, f"{method} not allowed", "method_not_allowed")

    def _create(self, headers: Mapping[str, str], body: bytes) -> Response:
        try:
            data = json.loads(body.decode())
        except ValueError as exc:
            return self.error(400, f"body is not JSON: {exc}", "bad_request")
        if not isinstance(data, dict):
            return self.error(400, "body must be a JSON object", "bad_request")
        missing = [name for name in REQUIRED if not data.get(name)]
        if missing:
            return self.error(422, f"missing fields: {', '.join(missing)}", "invalid")
        to = data["to"] if isinstance(data["to"], dict) else {}
        if "reject" in str(to.get("address1", "")).lower():
            return self.error(422, "the sandbox rejects this address", "address_rejected")

        def build() -> Piece:
            return Piece(
                vendor=self.name,
                id=self.store.new_id("sbx_"),
                reference=str(data["reference"]),
                metadata={str(k): str(v) for k, v in (data.get("metadata") or {}).items()},
                request=data,
                status="Received",
            )

        piece, replay = self.store.create_or_replay(self.name, key=headers.get("idempotency-key"), build=build)
        return self.json_response(
            200 if replay else 201, self._piece(piece), {"Idempotent-Replayed": str(replay).lower()}
        )

    def _piece(self, piece: Piece) -> dict[str, Any]:
        request = piece.request or {}
        return {
            "id": piece.id,
            "reference": piece.reference,
            "status": piece.status,
            "metadata": piece.metadata,
            "size": request.get("size"),
            "mail_date": request.get("mail_date"),
            "test": bool(request.get("test")),
            "created_at": _iso(piece.created_at),
        }

    def webhook(self, piece: Piece, event: WebhookEvent) -> tuple[bytes, dict[str, str]]:
        data = {**self._piece(piece), "status": event.status, "occurred_at": event.occurred_at.isoformat()}
        body = json.dumps(
            {"id": event.id, "type": "piece.status_changed", "created_at": _iso(time.time()), "data": data}
        )
        raw = body.encode()
        # Wall clock: the receiver checks the timestamp against its own clock.
        return raw, {
            "Content-Type": "application/json",
            "X-Postcards-Signature": sign(self.secret, int(time.time()), raw),
        }
