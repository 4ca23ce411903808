"""Simulated IntelliPrint: unconfirmed and confirmed print jobs, reference lookups, Svix-signed webhooks.

A job counts as a physical piece only once it is confirmed (and not in test mode,
deleted or cancelled): that is what makes "crash between create and confirm" and
"two racing submits" observable.  Like the real API (vendors.md §3.1, the Node SDK's
``prints.list``): ids are random, so they do not follow creation order; ``created``
counts whole seconds; the list filters by exact ``reference`` and by ``testmode``
(live jobs by default, test jobs only with ``testmode=true``), includes unconfirmed
jobs, sorts by ``created`` (``desc`` by default) and pages with ``limit`` (default 10,
at most 1000) and ``skip``.  Create, confirm and delete are atomic, so racing
requests see what a real server's would.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import string
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from svix.webhooks import Webhook

from printers.simulator.core import Piece, VendorHandler, WebhookEvent

if TYPE_CHECKING:
    from printers.simulator.server import Simulator

Response = tuple[int, dict[str, str], bytes]
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "invalid_request_error"}
ID_ALPHABET = string.ascii_letters + string.digits
LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX = 10, 1000


class IntelliPrintHandler(VendorHandler):
    name = "intelliprint"
    lifecycle = ("waiting_to_print", "printing", "enclosing", "shipping", "sent")

    def __init__(self, sim: Simulator) -> None:
        super().__init__(sim)
        # One lock for every change of a job, so a confirm racing a delete (or another
        # confirm) is decided once, as on the real server.
        self._jobs_lock = threading.Lock()

    def _new_id(self, prefix: str) -> str:
        # Random like the real ids (print_9TgYc04nBd): creation order cannot be read from them.
        while True:
            candidate = prefix + "".join(secrets.choice(ID_ALPHABET) for _ in range(10))
            if self.store.piece(self.name, candidate) is None:
                return candidate

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
        with self._jobs_lock:
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
        testmode = bool(data.get("testmode"))

        def build() -> Piece:
            job_id = self._new_id("print_")
            job = {
                "object": "print",
                "id": job_id,
                "created": int(self.store.now()),
                "testmode": testmode,
                "confirmed": confirmed,
                "type": data.get("type", "letter"),
                "reference": str(data.get("reference") or ""),
                "metadata": data.get("metadata") or {},
                "letters": [{"id": self._new_id("ltr_"), "status": "waiting_to_print" if confirmed else "draft"}],
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
                physical=confirmed and not testmode,  # nothing prints until confirmed; test jobs never
            )

        # No idempotency key: every POST is a new job, exactly like the real API.
        with self._jobs_lock:
            piece, _ = self.store.create_or_replay(self.name, key=None, build=build)
        return self.json_response(200, piece.response)

    def search(self, query: dict[str, list[str]]) -> Response:
        def last(name: str, default: str) -> str:
            return query.get(name, [default])[-1]

        try:
            limit, skip = int(last("limit", str(LIST_LIMIT_DEFAULT))), int(last("skip", "0"))
        except ValueError:
            return self.error(400, "limit and skip must be integers.", "parameter_invalid")
        if not 1 <= limit <= LIST_LIMIT_MAX or skip < 0:
            return self.error(400, f"limit must be 1 to {LIST_LIMIT_MAX}, skip 0 or more.", "parameter_invalid")
        reference = query.get("reference", [None])[-1]
        testmode = last("testmode", "false") == "true"  # live jobs unless test jobs are asked for
        confirmed = last("confirmed", "")
        with self._jobs_lock:
            jobs = [
                p.response
                for p in self.store.pieces(self.name)
                if not p.extra.get("deleted")
                and (reference is None or p.reference == reference)
                and p.response["testmode"] == testmode
                and (confirmed not in ("true", "false") or p.response["confirmed"] == (confirmed == "true"))
            ]
        jobs.sort(key=lambda job: (job["created"], job["id"]), reverse=last("sort_order", "desc") != "asc")
        page = jobs[skip : skip + limit]
        return self.json_response(200, {"object": "list", "data": page, "has_more": skip + limit < len(jobs)})

    def update(self, piece: Piece, body: bytes) -> Response:
        data = self._json(body)
        if data is None:
            return self.error(400, "The body must be a JSON object.", "invalid_body")
        job = piece.response
        if job["confirmed"]:
            return self.error(400, "A confirmed print job cannot be updated.", "print_already_confirmed")
        if data.get("confirmed") is True:
            job = {**job, "confirmed": True, "letters": [{**x, "status": "waiting_to_print"} for x in job["letters"]]}
            self.store.update(
                self.name, piece.id, response=job, physical=not job["testmode"], status="waiting_to_print"
            )
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
        # The job's letter moves on with its webhooks, so a lookup of the job
        # (GET /prints, /prints/<id>) shows what they said.
        moved = {k: letter[k] for k in ("status", "shipped_date", "returned") if k in letter}
        job = {**job, "letters": [{**job["letters"][0], **moved}, *job["letters"][1:]]}
        self.store.update(self.name, piece.id, response=job)
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
