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

import httpx

from common.http import close_clients, mount_transport, unmount_transport
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


@dataclass(frozen=True)
class Answer:
    """What the simulator answers one request: a status, headers and body, or
    ``cut`` (a fault kind) when the connection ends with no answer at all."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    cut: str = ""
    hang: float = 0.0  # seconds before the cut connection ends


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
        self._mounted = False

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
        if self._mounted:
            unmount_transport(self.base_url)
            self._mounted = False
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

    def answer(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes, *, client_port: int = 0
    ) -> Answer:
        """Answer one request (``target``: ``/<vendor>/<rest>?query``; header
        names lower-cased): captured, routed to the vendor's handler, with a
        queued fault applied around it.  Both ways in serve through this: the
        HTTP server and the in-process transport (:meth:`in_process`)."""
        parts = urlsplit(target)
        vendor, _, rest = parts.path.lstrip("/").partition("/")
        query = parse_qs(parts.query, keep_blank_values=True)
        path = "/" + rest
        handler = self.handlers.get(vendor)
        if handler is None:
            return Answer(404, {"Content-Type": "text/plain"}, f"no simulated printer {vendor!r}".encode())
        with self._lock:
            self.requests.append(CapturedRequest(vendor, method, path, query, dict(headers), body, client_port))
        fault = self.take_fault(vendor, method, path)
        if fault and fault.kind == "status":
            return self._fault_status(handler, int(fault.value))
        if fault and fault.kind == "latency":
            time.sleep(fault.value)
        try:
            status, out_headers, out_body = handler.handle(method, path, query, dict(headers), body)
        except Exception as exc:  # a handler bug must show, not hang the client
            status, out_headers = 500, {"Content-Type": "text/plain"}
            out_body = f"simulator handler error: {type(exc).__name__}: {exc}".encode()
        if fault and fault.kind in ("timeout_after_create", "drop_after_create"):
            # The piece exists; the client never hears about it (after ``hang`` seconds).
            return Answer(0, {}, b"", cut=fault.kind, hang=fault.value)
        if fault and fault.kind == "status_after_create":
            return self._fault_status(handler, int(fault.value))  # the piece exists, the client hears a failure
        return Answer(status, out_headers, out_body)

    def _fault_status(self, handler: VendorHandler, code: int) -> Answer:
        extra = rate_limit_headers(self.now()) if code == 429 else {}
        message = "Rate limit exceeded." if code == 429 else "Simulated failure."
        err_code = "rate_limit_exceeded" if code == 429 else "service_unavailable"
        return Answer(code, {"Content-Type": "application/json", **extra}, handler.error_body(code, message, err_code))

    def in_process(self) -> Simulator:
        """Serve this simulator's URLs inside this process, without sockets:
        every pooled client of the outbound seam for :attr:`base_url` calls
        :meth:`answer` through an httpx transport (zero latency, no HTTP
        server sharing the interpreter).  Undone by :meth:`stop`."""
        mount_transport(self.base_url, _InProcessTransport(self))
        self._mounted = True
        return self

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
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            answer = sim.answer(self.command, self.path, headers, body, client_port=int(self.client_address[1]))
            if answer.cut:
                time.sleep(answer.hang)
                self.close_connection = True
                return  # the piece exists, the client never hears about it
            self._send(answer.status, answer.headers, answer.body)

        def _send(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _dispatch

    return Handler


class _InProcessTransport(httpx.BaseTransport):
    """httpx's side of :meth:`Simulator.in_process`: a request becomes a call
    to :meth:`Simulator.answer`; a cut connection becomes the error a client
    would see (a read timeout, or the server hanging up)."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        target = request.url.raw_path.decode("ascii")
        headers = {k.lower(): v for k, v in request.headers.items()}
        answer = self.sim.answer(request.method, target, headers, request.read())
        if answer.cut:
            # Hang as the server would, but no longer than this client waits for an answer.
            read = (request.extensions.get("timeout") or {}).get("read")
            time.sleep(answer.hang if read is None else min(answer.hang, float(read)))
        if answer.cut == "timeout_after_create":
            raise httpx.ReadTimeout("simulated: no answer in time", request=request)
        if answer.cut:
            raise httpx.RemoteProtocolError("simulated: the server hung up without answering", request=request)
        return httpx.Response(answer.status, headers=dict(answer.headers), content=answer.body, request=request)
