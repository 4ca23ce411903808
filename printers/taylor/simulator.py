"""Simulated Taylor, speaking the wire format we defined in ``docs/printers/taylor.md``."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from printers.signing import hmac_sha256_hex
from printers.simulator.core import Piece, VendorHandler, WebhookEvent

Response = tuple[int, dict[str, str], bytes]
RECEIVED = 0  # our contract's code for "accepted, not in production yet": the only cancellable one


class TaylorHandler(VendorHandler):
    name = "taylor"
    lifecycle = ("9", "10", "11", "12")

    def error_body(self, status: int, message: str, code: str) -> bytes:
        return json.dumps({"error": {"code": code, "message": message}}).encode()

    def handle(
        self, method: str, path: str, query: dict[str, list[str]], headers: Mapping[str, str], body: bytes
    ) -> Response:
        if not headers.get("authorization", "").startswith("Bearer "):
            return self.error(401, "A Bearer API key is required.", "unauthorized")
        parts = path.strip("/").split("/")
        if parts == ["v1", "mailpieces"] and method == "POST":
            return self.create(headers, body)
        if parts == ["v1", "mailpieces"] and method == "GET":
            reference = query.get("reference", [""])[-1]
            found = [self.view(p) for p in self.store.pieces(self.name) if p.reference == reference]
            return self.json_response(200, {"data": found})
        if len(parts) == 3 and parts[:2] == ["v1", "mailpieces"] and method == "DELETE":
            return self.cancel(parts[2])
        return self.error(404, f"No route for {method} {path}.", "not_found")

    def create(self, headers: Mapping[str, str], body: bytes) -> Response:
        key = headers.get("idempotency-key") or ""
        if not 10 <= len(key) <= 255:
            return self.error(400, "Idempotency-Key must be 10 to 255 characters.", "idempotency_key_invalid")
        try:
            data: Any = json.loads(body)
        except ValueError:
            return self.error(400, "The body must be JSON.", "invalid_body")
        if not isinstance(data, dict) or not data.get("reference") or not (data.get("to") or {}).get("address1"):
            return self.error(422, "reference and to.address1 are required.", "invalid_mailpiece")

        def build() -> Piece:
            piece_id, reference = self.store.new_id("tay_"), str(data["reference"])
            response = {
                "id": piece_id,
                "reference": reference,
                "status": RECEIVED,
                "test": bool(data.get("test")),
            }
            return Piece(self.name, piece_id, reference=reference, request=data, response=response, status="0")

        piece, replay = self.store.create_or_replay(self.name, key=key, build=build)
        if replay and piece.request != data:
            return self.error(422, "This Idempotency-Key was used with another body.", "idempotency_key_reused")
        return self.json_response(200 if replay else 201, piece.response)

    def view(self, piece: Piece) -> dict[str, Any]:
        """The mailpiece as a lookup shows it: with its status code now (its
        webhooks move it on; a cancelled piece keeps the code it had)."""
        code = piece.status if piece.status.lstrip("-").isdigit() else piece.response["status"]
        return {**piece.response, "status": int(code)}

    def cancel(self, piece_id: str) -> Response:
        piece = self.store.piece(self.name, piece_id)
        if piece is None:
            return self.error(404, "No such mailpiece.", "not_found")
        if piece.status != str(RECEIVED):
            return self.error(409, "Production has started: the mailpiece can no longer be cancelled.", "too_late")
        self.store.update(self.name, piece_id, cancelled=True, physical=False, status="cancelled")
        return self.json_response(200, {"id": piece_id, "cancelled": True})

    def webhook(self, piece: Piece, event: WebhookEvent) -> tuple[bytes, dict[str, str]]:
        payload = {
            "id": event.id.replace("evt_", "tev_"),
            "type": "mailpiece.status",
            "mailpiece_id": piece.id,
            "reference": piece.reference,
            "status": int(event.status),
            "occurred_at": event.occurred_at.isoformat().replace("+00:00", "Z"),
        }
        body = json.dumps(payload).encode()
        stamp = str(int(time.time()))  # the receiver checks it against its own clock
        signature = hmac_sha256_hex(self.secret, stamp.encode() + b"." + body)
        return body, {"Content-Type": "application/json", "X-Taylor-Signature": f"t={stamp},v1={signature}"}
