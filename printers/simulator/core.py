"""The local printer simulator: a real HTTP server speaking the printers' wire formats.

Usage (tests use the ``simulator`` fixture in ``printers/conftest.py``)::

    sim = Simulator(secrets={"lob": "test-lob-secret"}).start()   # 127.0.0.1, port 0
    sim.url("lob")                     # "http://127.0.0.1:<port>/lob/v1"
    sim.inject("lob", 429)             # next Lob request answers 429 with rate-limit headers
    sim.inject("lob", Fault.timeout_after_create())  # handle, then hang past the client timeout
    sim.inject("lob", Fault.status_after_create(503))  # handle (the piece exists), then answer 503
    sim.physical_pieces("lob", key)    # pieces created under an idempotency key (or reference)
    sim.advance(25 * 3600)             # jump the clock: idempotency keys expire after 24 h
    sim.fire_webhooks(lambda vendor: f"{live_server.url}/webhooks/{vendor}/",
                      sim.timeline("lob", piece_id, duplicates=[1], order=[0, 2, 1], missing=[3]))
    sim.stop()

Routing: ``/<vendor>/<rest>`` goes to the handler registered for ``vendor`` with
``path = "/<rest>"`` (e.g. ``/v1/postcards``).

Writing a vendor handler (in the printer's folder, ``printers/<vendor>/simulator.py``)::

    class StannpHandler(VendorHandler):
        name = "stannp"
        lifecycle = ("received", "producing", "handed_over", "local_delivery", "delivered")

        def handle(self, method, path, query, headers, body):   # -> (status, headers, body bytes)
            key = headers.get("x-idempotency-key")
            piece, replay = self.store.create_or_replay(
                self.name, key=key, build=lambda: Piece(vendor=self.name, id=self.store.new_id(""), ...))
            return 200, {"Content-Type": "application/json"}, json.dumps({...}).encode()

        def webhook(self, piece, event):                        # -> (body bytes, headers), signed
            # event: WebhookEvent (id, status in the vendor's vocabulary, occurred_at aware datetime)
            body = json.dumps({...}).encode()
            return body, {"Content-Type": "application/json", "X-Stannp-Signature": hmac_sha256_hex(self.secret, body)}

and one line in ``VENDORS`` (``printers/simulator/registry.py``)::

    "stannp": "printers.stannp.simulator.StannpHandler",

A simulator imports the handlers it serves when it is created; nothing registers
itself at import.  Tests serve a throwaway vendor with
``Simulator(handlers={"echo": EchoHandler})``.

``headers`` passed to ``handle`` has lower-cased names; ``query`` is ``parse_qs`` output
(``dict[str, list[str]]``); ``body`` is the raw request bytes.  Faults are applied by the
server before/after ``handle``; override ``error_body`` for the vendor's error envelope.

This module is the simulator's public API; the implementation lives in
``store`` (pieces, idempotency keys, the injectable clock), ``faults`` (fault
injection), ``webhooks`` (timelines and firing), ``registry`` (``VendorHandler``
and ``VENDORS``) and ``server`` (``Simulator``, which composes them, and the HTTP handler).
Import from here (or from ``printers.simulator``).
"""

from __future__ import annotations

from printers.simulator.faults import Fault
from printers.simulator.registry import VENDORS, VendorHandler
from printers.simulator.server import CapturedRequest, Simulator
from printers.simulator.store import KEY_TTL_S, Piece, PieceStore
from printers.simulator.webhooks import Delivery, WebhookEvent, WebhookStep

__all__ = [
    "KEY_TTL_S",
    "VENDORS",
    "CapturedRequest",
    "Delivery",
    "Fault",
    "Piece",
    "PieceStore",
    "Simulator",
    "VendorHandler",
    "WebhookEvent",
    "WebhookStep",
]
