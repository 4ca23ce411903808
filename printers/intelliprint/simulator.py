"""Simulated IntelliPrint: unconfirmed and confirmed print jobs, reference lookups, Svix-signed webhooks.

A job counts as a physical piece only once it is confirmed: that is what makes
"crash between create and confirm" observable (physical pieces stay at 1).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Mapping
from typing import Any

from svix.webhooks import Webhook

from printers.simulator.core import Piece, VendorHandler, WebhookEvent

Response = tuple[int, dict[str, str], bytes]
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "invalid_request_error"}


class IntelliPrintHandler(VendorHandler):
    name = "intelliprint"
    lifecycle = ("waiting_to_print", "printing", "enclosing", "shipping", "sent")

    def error_body(self, status: int, message: str, code: str) -> bytes:
        kind = "rate_limited" if status == 429 else ERROR_TYPES.get(status, "internal_error")
        return json.dumps({"error": {"type": kind, "code": code, "message": message, "param": None}}).encode()

    def handle(
        self, method: str, path: str, query: dict[str, list[str]], headers: Mapping[str, str], body: bytes
    ) -> Response:
        if not headers.get("authorization", "").startswith("Bearer "):
            return self.error(401, "No API key provided.", "authentication_required")
        parts = path.strip("/").split("/")
        if parts == ["v1", "prints"] and method == "POST":
            return self.create(body)
        if parts == ["v1", "prints"] and method == "GET":
            return self.search(query)
        if len(parts) != 3 or parts[:2] != ["v1", "prints"]:
            return self.error(404, f"No route for {method} {path}.", "not_found")
        piece = self.store.piece(self.name, parts[2])
        if piece is None or piece.extra.get("deleted"):
            return self.error(404, "No such print job.", "resource_missing")
        if method == "GET":
            return self.json_response(200, piece.response)
        if method == "POST":
            return self.update(piece, body)
        if method == "DELETE":
            return self.delete(piece)
        return self.error(404, f"No route for {method} {path}.", "not_found")

    def _json(self, body: bytes) -> dict[str, Any] | None:
        try:
            data = json.loads(body or b"{}")
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    def create(self, body: bytes) -> Response:
        data = self._json(body)
        if data is None:
            return self.error(400, "The body must be a JSON object.", "invalid_body")
        recipients = data.get("recipients")
        if not data.get("file") or not isinstance(recipients, list) or len(recipients) != 1:
            return self.error(400, "A file and exactly one recipient are required.", "parameter_missing")
        confirmed = data.get("confirmed") is True

        def build() -> Piece:
            job_id = self.store.new_id("print_")
            job = {
                "object": "print",
                "id": job_id,
                "created": int(self.store.now()),
                "testmode": bool(data.get("testmode")),
                "confirmed": confirmed,
                "type": data.get("type", "letter"),
                "reference": str(data.get("reference") or ""),
                "metadata": data.get("metadata") or {},
                "letters": [{"id": self.store.new_id("ltr_"), "status": "waiting_to_print" if confirmed else "draft"}],
                "cost": {"amount": 61_000_000, "currency": "GBP"},  # GBP x 10^8
            }
            return Piece(
                vendor=self.name,
                id=job_id,
                reference=job["reference"],
                metadata=dict(job["metadata"]),
                request=data,
                response=job,
                status=job["letters"][0]["status"],
                physical=confirmed,  # nothing prints until confirmed
            )

        # No idempotency key: every POST is a new job, exactly like the real API.
        piece, _ = self.store.create_or_replay(self.name, key=None, build=build)
        return self.json_response(200, piece.response)

    def search(self, query: dict[str, list[str]]) -> Response:
        reference = query.get("reference", [None])[-1]
        testmode = query.get("testmode", ["false"])[-1] == "true"
        jobs = [
            p.response
            for p in self.store.pieces(self.name)
            if not p.extra.get("deleted")
            and (reference is None or p.reference == reference)
            and p.response["testmode"] == testmode  # testmode jobs are hidden unless asked for
        ]
        return self.json_response(200, {"object": "list", "data": jobs, "has_more": False})

    def update(self, piece: Piece, body: bytes) -> Response:
        data = self._json(body)
        if data is None:
            return self.error(400, "The body must be a JSON object.", "invalid_body")
        job = piece.response
        if job["confirmed"]:
            return self.error(400, "A confirmed print job cannot be updated.", "print_already_confirmed")
        if data.get("confirmed") is True:
            job = {**job, "confirmed": True, "letters": [{**x, "status": "waiting_to_print"} for x in job["letters"]]}
            self.store.update(self.name, piece.id, response=job, physical=True, status="waiting_to_print")
        return self.json_response(200, job)

    def delete(self, piece: Piece) -> Response:
        job = piece.response
        if not job["confirmed"]:
            self.store.update(self.name, piece.id, extra={**piece.extra, "deleted": True})
            return self.json_response(200, {"id": piece.id, "object": "print", "deleted": True})
        if piece.status not in ("waiting_to_print", "cancelled"):
            return self.error(400, "Printing has started: this job can no longer be cancelled.", "not_cancellable")
        job = {**job, "letters": [{**x, "status": "cancelled"} for x in job["letters"]]}
        self.store.update(self.name, piece.id, response=job, status="cancelled", cancelled=True, physical=False)
        return self.json_response(200, job)

    def webhook(self, piece: Piece, event: WebhookEvent) -> tuple[bytes, dict[str, str]]:
        job, status = piece.response, event.status
        postage = (piece.request or {}).get("postage") or {}
        when = int(event.occurred_at.timestamp())
        letter: dict[str, Any] = {
            "account": "acc_simulator",
            "envelope": postage.get("ideal_envelope") or "postcard_a6",
            "id": job["letters"][0]["id"],
            "postage_service": "uk_second_class",
            "print_id": piece.id,
            "reference": job["reference"],
            "status": status,
            "testmode": job["testmode"],
            "type": "letter.updated",
        }
        if status in ("shipping", "sent", "returned"):
            letter["shipped_date"] = when if status != "returned" else when - 86_400
        if status == "returned":
            letter["returned"] = {"date": when, "reason": "Addressee gone away"}
        body = json.dumps(letter).encode()
        msg_id = "msg_" + event.id.removeprefix("evt_")
        # Signed with the real clock: the receiver checks svix-timestamp against its own (±5 min).
        now = dt.datetime.fromtimestamp(int(time.time()), dt.UTC)
        signature = Webhook(self.secret).sign(msg_id, now, body.decode())
        headers = {
            "Content-Type": "application/json",
            "svix-id": msg_id,
            "svix-timestamp": str(int(now.timestamp())),
            "svix-signature": signature,
        }
        return body, headers
