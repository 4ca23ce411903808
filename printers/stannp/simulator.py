"""Simulated Stannp: form-encoded creates, 409 replays, reporting lookups, signed batch webhooks."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs, unquote

from printers.signing import hmac_sha256_hex
from printers.simulator.core import Piece, VendorHandler, WebhookEvent

Response = tuple[int, dict[str, str], bytes]
# Statuses in which Stannp still lets a piece be cancelled.
CANCELLABLE = frozenset({"received", "test"})


def _form(body: bytes) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(body.decode("utf-8"), keep_blank_values=True).items()}


def _stamp(when: float | dt.datetime) -> str:
    moment = when if isinstance(when, dt.datetime) else dt.datetime.fromtimestamp(when, dt.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S")  # Stannp's zone-less format


class StannpHandler(VendorHandler):
    name = "stannp"
    lifecycle = ("received", "producing", "handed_over", "local_delivery", "delivered")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._numbers = itertools.count(52_000_001)

    def error_body(self, status: int, message: str, code: str) -> bytes:
        return self.json_response(status, {"success": False, "error": message})[2]

    def fail(self, status: int, message: str) -> Response:
        return self.json_response(status, {"success": False, "error": message})

    def handle(
        self, method: str, path: str, query: dict[str, list[str]], headers: Mapping[str, str], body: bytes
    ) -> Response:
        if not headers.get("authorization", "").startswith("Basic ") and "api_key" not in query:
            return self.fail(401, "Invalid or missing API key.")
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if method == "POST" and parts == ["v1", "postcards", "create"]:
            return self.create(headers, body)
        if method == "GET" and parts[:3] == ["v1", "postcards", "get"] and len(parts) == 4:
            piece = self.store.piece(self.name, parts[3])
            return self.json_response(200, {"success": True, "data": self.view(piece)}) if piece else self.missing()
        if method == "POST" and parts == ["v1", "postcards", "cancel"]:
            return self.cancel(_form(body).get("id", ""))
        if method == "GET" and parts[:3] == ["v1", "reporting", "list"] and 5 <= len(parts) <= 7:
            return self.report(status=parts[5] if len(parts) > 5 else "all", tag=parts[6] if len(parts) > 6 else "")
        return self.fail(404, f"No route for {method} {path}.")

    def missing(self) -> Response:
        return self.fail(404, "Resource does not exist or was deleted.")

    def create(self, headers: Mapping[str, str], body: bytes) -> Response:
        form = _form(body)
        key = headers.get("x-idempotency-key") or form.get("idempotency_key") or None
        if key is not None and not 10 <= len(key) <= 1024:
            return self.fail(400, "Idempotency key must be 10 to 1024 characters.")
        missing = [f for f in ("size", "front", "recipient[address1]", "recipient[country]") if not form.get(f)]
        if missing:
            return self.fail(400, f"Missing required fields: {', '.join(missing)}.")

        def build() -> Piece:
            test = form.get("test") in ("1", "true")
            number = next(self._numbers)
            piece = Piece(
                vendor=self.name,
                id=str(number),
                reference=form.get("tags", "").split(",")[0],
                request=form,
                extra={"raw_body": body},
                status="test" if test else "received",
                physical=not test,  # test pieces are a sample PDF, never dispatched
            )
            piece.response = {
                "success": True,
                "data": {
                    "pdf": f"https://simulator.invalid/stannp/{number}.pdf",
                    "id": number,  # an int here, a string in webhooks: Stannp's type drift
                    "created": dt.datetime.fromtimestamp(self.store.now(), dt.UTC).isoformat(),
                    "format": form["size"],
                    "cost": "0.61",
                    "status": piece.status,
                },
            }
            return piece

        piece, replay = self.store.create_or_replay(self.name, key=key, build=build)
        if not replay:
            return self.json_response(200, piece.response)
        if piece.extra.get("raw_body") != body:
            # Only an identical body is a repeat (vendors.md §2.2), byte for byte: a client that
            # reorders or re-encodes fields between retries must fail here, as it would at Stannp.
            return self.fail(400, "Idempotency key already used with a different request.")
        return self.json_response(409, piece.response)  # Stannp's replay: the original body, HTTP 409

    def cancel(self, piece_id: str) -> Response:
        piece = self.store.piece(self.name, piece_id)
        if piece is None:
            return self.missing()
        if piece.status not in CANCELLABLE:
            return self.fail(400, "This mailpiece can no longer be cancelled.")
        self.store.update(self.name, piece_id, status="cancelled", cancelled=True, physical=False)
        return self.json_response(200, {"success": True, "data": 1})

    def report(self, *, status: str, tag: str) -> Response:
        singles = [
            self.view(p)
            for p in self.store.pieces(self.name)
            if (status == "all" or p.status == status) and (not tag or tag in str(p.request.get("tags", "")))
        ]
        return self.json_response(200, {"success": True, "data": {"singles": singles}})

    def view(self, piece: Piece) -> dict[str, Any]:
        form = piece.request or {}
        return {
            "id": piece.id,
            "timestamp": _stamp(piece.created_at),
            "status": piece.status,
            "type": "postcard",
            "format": form.get("size", ""),
            "pdf_file": f"https://simulator.invalid/stannp/{piece.id}.pdf",
            "dispatched": None,
            "country": form.get("recipient[country]", ""),
            "cost": "0.61",
            "addons": "",
            "tags": form.get("tags", ""),
            "postcode": form.get("recipient[postcode]") or form.get("recipient[zipcode]", ""),
            "address": form.get("recipient[address1]", ""),
        }

    def webhook(self, piece: Piece, event: WebhookEvent) -> tuple[bytes, dict[str, str]]:
        item = {**self.view(piece), "status": event.status}
        if item["id"].isdigit():
            item["id"] = int(item["id"])  # ids drift between int and str
        envelope = {
            "webhook_id": 1,
            "event": "mailpiece_status",
            "created": _stamp(event.occurred_at),
            "retries": "0",
            "mailpieces": [item],
        }
        body = self.json_response(200, envelope)[2]
        return body, {"Content-Type": "application/json", "X-Stannp-Signature": hmac_sha256_hex(self.secret, body)}
