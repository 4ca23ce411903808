"""The simulator's HTTP server: ``Simulator`` and the request handler that routes to vendors.

``Simulator`` composes its parts: a ``PieceStore`` (``store``), the vendor handlers
named in the registry, ``WebhookTimelines`` (``webhooks``) and fault queues.
``/<vendor>/<rest>`` goes to the handler for ``vendor`` with ``path = "/<rest>"``;
every request is captured, and a queued fault is applied around the handler call.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from common.http import close_clients
from printers.simulator.faults import Fault, FaultQueue, rate_limit_headers
from printers.simulator.registry import VENDORS, VendorHandler, load_handler
from printers.simulator.store import KEY_TTL_S, Piece, PieceStore
from printers.simulator.webhooks import Delivery, WebhookStep, WebhookTimelines


@dataclass(frozen=True)
class CapturedRequest:
    vendor: str
    method: str
    path: str  # after the vendor prefix, e.g. /v1/postcards
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    body: bytes
    client_port: int = 0  # the caller's TCP port: equal ports = one reused connection


class _Server(ThreadingHTTPServer):
    # A real API takes a burst of connections; the socketserver default backlog
    # of 5 resets the rest, which would make race tests fail for the wrong reason.
    request_queue_size = 128


class Simulator:
    """The HTTP server around a store of pieces and keys (``store``), the vendor handlers,
    fault queues and captured requests.  The store's test-facing queries are
    forwarded below so tests read ``sim.physical_pieces(...)``."""

    def __init__(
        self,
        *,
        secrets: Mapping[str, str] | None = None,
        clock: Callable[[], float] | None = None,
        key_ttl_s: float = KEY_TTL_S,
        host: str = "127.0.0.1",
        port: int = 0,
        vendors: Iterable[str] | None = None,
        handlers: Mapping[str, str | type[VendorHandler]] | None = None,
    ) -> None:
        """``handlers`` maps vendor names to handler classes or dotted paths (default:
        the registry's ``VENDORS``); ``vendors`` serves only those names.  Only the
        handlers served are imported."""
        self.store = PieceStore(clock=clock, key_ttl_s=key_ttl_s)
        self.secrets = dict(secrets or {})
        self._lock = threading.RLock()  # guards captured requests and the fault queues
        self._faults = FaultQueue(self._lock)
        self.requests: list[CapturedRequest] = []
        registry = dict(VENDORS if handlers is None else handlers)
        names = set(vendors) if vendors is not None else set(registry)
        self.handlers: dict[str, VendorHandler] = {
            name: load_handler(spec)(self) for name, spec in registry.items() if name in names
        }
        self.webhooks = WebhookTimelines(self.store, self.handlers)
        self._server = _Server((host, port), _make_request_handler(self))
        self._server.daemon_threads = True
        self._server.block_on_close = False  # a hung "timeout after create" thread must not block stop()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ the store, for tests
    def now(self) -> float:
        return self.store.now()

    def advance(self, seconds: float) -> None:
        """Jump the simulator clock (idempotency-key expiry, event times)."""
        self.store.advance(seconds)

    def piece(self, vendor: str, piece_id: str) -> Piece | None:
        return self.store.piece(vendor, piece_id)

    def pieces(self, vendor: str) -> list[Piece]:
        return self.store.pieces(vendor)

    def update(self, vendor: str, piece_id: str, **changes: Any) -> Piece:
        return self.store.update(vendor, piece_id, **changes)

    def physical_pieces(self, vendor: str, key: str | None = None) -> int:
        """Pieces that would print: all of ``vendor``'s, or those under ``key`` (idempotency key or reference)."""
        return self.store.physical_pieces(vendor, key)

    def total_physical_pieces(self) -> int:
        return self.store.total_physical_pieces()

    # ------------------------------------------------------------------ webhooks
    def timeline(
        self, vendor: str, piece_id: str, statuses: Sequence[str] | None = None, **kwargs: Any
    ) -> list[WebhookStep]:
        """See :meth:`WebhookTimelines.timeline`."""
        return self.webhooks.timeline(vendor, piece_id, statuses, **kwargs)

    def build_webhooks(self, target: Callable[[str], str] | str, steps: Iterable[WebhookStep]) -> list[Delivery]:
        return self.webhooks.build_webhooks(target, steps)

    def fire_webhooks(
        self, target: Callable[[str], str] | str, steps: Iterable[WebhookStep], **kwargs: Any
    ) -> list[Delivery]:
        """See :meth:`WebhookTimelines.fire_webhooks`."""
        return self.webhooks.fire_webhooks(target, steps, **kwargs)

    # ------------------------------------------------------------------ lifecycle
    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def url(self, vendor: str) -> str:
        return f"{self.base_url}/{vendor}/v1"

    def start(self) -> Simulator:
        # A short poll interval keeps stop() (and test teardown) fast.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="printer-simulator", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def stop(self) -> None:
        """Stop serving (when started) and release the port.

        The outbound seam keeps connections to this server alive in its pool:
        closing that pool ends them, so no kept-alive handler thread outlives
        the server and no half-closed socket stays open in the test process."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()
        close_clients(self.base_url)

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ faults and captured requests
    def inject(self, vendor: str, fault: Fault | int | float | str) -> Fault:
        """Queue a fault: an int is a status code, a float a latency, a str a fault kind."""
        return self._faults.add(vendor, fault)

    def take_fault(self, vendor: str, method: str, path: str) -> Fault | None:
        return self._faults.take(vendor, method, path)

    def captured(self, vendor: str, method: str | None = None) -> list[CapturedRequest]:
        with self._lock:
            return [r for r in self.requests if r.vendor == vendor and (method is None or r.method == method)]


def _make_request_handler(sim: Simulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out as separate writes: without TCP_NODELAY the
        # second waits ~40 ms for the client's delayed ACK on a kept-alive
        # connection, which capped the simulator at ~150 calls/s.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def _dispatch(self) -> None:
            parts = urlsplit(self.path)
            vendor, _, rest = parts.path.lstrip("/").partition("/")
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            query = parse_qs(parts.query, keep_blank_values=True)
            path = "/" + rest
            handler = sim.handlers.get(vendor)
            if handler is None:
                self._send(404, {"Content-Type": "text/plain"}, f"no simulated printer {vendor!r}".encode())
                return
            with sim._lock:
                sim.requests.append(
                    CapturedRequest(vendor, self.command, path, query, headers, body, int(self.client_address[1]))
                )
            fault = sim.take_fault(vendor, self.command, path)
            if fault and fault.kind == "status":
                self._send_fault_status(handler, int(fault.value))
                return
            if fault and fault.kind == "latency":
                time.sleep(fault.value)
            try:
                status, out_headers, out_body = handler.handle(self.command, path, query, headers, body)
            except Exception as exc:  # a handler bug must show, not hang the client
                status, out_headers = 500, {"Content-Type": "text/plain"}
                out_body = f"simulator handler error: {type(exc).__name__}: {exc}".encode()
            if fault and fault.kind in ("timeout_after_create", "drop_after_create"):
                time.sleep(fault.value)
                self.close_connection = True
                return  # the piece exists, the client never hears about it
            if fault and fault.kind == "status_after_create":
                self._send_fault_status(handler, int(fault.value))
                return  # the piece exists, the client hears a failure
            self._send(status, out_headers, out_body)

        def _send_fault_status(self, handler: Any, code: int) -> None:
            extra = rate_limit_headers(sim.now()) if code == 429 else {}
            message = "Rate limit exceeded." if code == 429 else "Simulated failure."
            err_code = "rate_limit_exceeded" if code == 429 else "service_unavailable"
            self._send(code, {"Content-Type": "application/json", **extra}, handler.error_body(code, message, err_code))

        def _send(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _dispatch

    return Handler
