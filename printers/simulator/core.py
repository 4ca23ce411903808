"""The local printer simulator: a real HTTP server speaking the printers' wire formats.

Usage (tests use the ``simulator`` fixture in ``printers/tests/conftest.py``)::

    sim = Simulator(secrets={"lob": "test-lob-secret"}).start()   # 127.0.0.1, port 0
    sim.url("lob")                     # "http://127.0.0.1:<port>/lob/v1"
    sim.inject("lob", 429)             # next Lob request answers 429 with rate-limit headers
    sim.inject("lob", Fault.timeout_after_create())  # handle, then hang past the client timeout
    sim.physical_pieces("lob", key)    # pieces created under an idempotency key (or reference)
    sim.advance(25 * 3600)             # jump the clock: idempotency keys expire after 24 h
    sim.fire_webhooks(lambda vendor: f"{live_server.url}/webhooks/{vendor}/",
                      sim.timeline("lob", piece_id, duplicates=[1], order=[0, 2, 1], missing=[3]))
    sim.stop()

Routing: ``/<vendor>/<rest>`` goes to the handler registered for ``vendor`` with
``path = "/<rest>"`` (e.g. ``/v1/postcards``).

Writing a vendor handler (P-B: Stannp, IntelliPrint)::

    class StannpHandler(VendorHandler):
        name = "stannp"
        lifecycle = ("received", "producing", "handed_over", "local_delivery", "delivered")

        def handle(self, method, path, query, headers, body):   # -> (status, headers, body bytes)
            key = headers.get("x-idempotency-key")
            piece, replay = self.sim.create_or_replay(
                self.name, key=key, build=lambda: Piece(vendor=self.name, id=self.sim.new_id(""), ...))
            return 200, {"Content-Type": "application/json"}, json.dumps({...}).encode()

        def webhook(self, piece, status):                       # -> (body bytes, headers), signed
            event = self.event          # WebhookEvent: id, occurred_at (aware datetime), status
            body = json.dumps({...}).encode()
            return body, {"Content-Type": "application/json", "X-Stannp-Signature": hmac_sha256_hex(self.secret, body)}

    register_vendor("stannp", StannpHandler)   # at import of printers.simulator.stannp

``headers`` passed to ``handle`` has lower-cased names; ``query`` is ``parse_qs`` output
(``dict[str, list[str]]``); ``body`` is the raw request bytes.  Faults are applied by the
core before/after ``handle``; override ``error_body`` for the vendor's error envelope.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import itertools
import json
import random
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import httpx

KEY_TTL_S = 24 * 3600
_current_event: contextvars.ContextVar[WebhookEvent] = contextvars.ContextVar("simulator_webhook_event")
_HANDLERS: dict[str, type[VendorHandler]] = {}


def register_vendor(name: str, handler_cls: type[VendorHandler]) -> None:
    """Make ``/<name>/...`` served by ``handler_cls`` in every simulator started afterwards."""
    _HANDLERS[name] = handler_cls


def registered_vendors() -> dict[str, type[VendorHandler]]:
    return dict(_HANDLERS)


@dataclass
class Piece:
    """One piece the simulated printer created.  ``status`` is in the vendor's vocabulary."""

    vendor: str
    id: str
    key: str | None = None  # idempotency key
    reference: str = ""  # ours, as the client sent it
    metadata: dict[str, str] = field(default_factory=dict)
    request: Any = None  # parsed request body, for replays that compare bodies
    response: Any = None  # stored response body, replayed verbatim
    status: str = ""
    created_at: float = 0.0  # simulator clock
    physical: bool = True  # False until it would print (IntelliPrint: on confirm)
    cancelled: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class WebhookEvent:
    """The event a handler's ``webhook()`` is rendering (read it as ``self.event``)."""

    id: str
    status: str
    occurred_at: dt.datetime


@dataclass(frozen=True)
class WebhookStep:
    """One webhook delivery in a timeline: ``piece_id`` reaches ``status`` at ``at`` (sim clock)."""

    vendor: str
    piece_id: str
    status: str
    at: float
    repeat: int = 1  # > 1: the same event (same id, same body) is delivered again


@dataclass(frozen=True)
class Delivery:
    step: WebhookStep
    url: str
    body: bytes
    headers: dict[str, str]
    status_code: int = 0
    response_text: str = ""


@dataclass(frozen=True)
class CapturedRequest:
    vendor: str
    method: str
    path: str  # after the vendor prefix, e.g. /v1/postcards
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    body: bytes


@dataclass
class Fault:
    """A fault for the next matching request: ``latency`` (sleep ``value`` s, then answer),
    ``status`` (answer ``int(value)`` without handling; 429 carries rate-limit headers),
    ``timeout_after_create`` (handle, then hang ``value`` s and drop the connection) or
    ``drop_after_create`` (handle, then drop the connection at once)."""

    kind: str
    value: float = 0.0
    times: int = 1
    method: str = ""  # only this method, e.g. "POST"; empty = any
    path_contains: str = ""

    @classmethod
    def latency(cls, seconds: float, **kw: Any) -> Fault:
        return cls("latency", seconds, **kw)

    @classmethod
    def status(cls, code: int, **kw: Any) -> Fault:
        return cls("status", float(code), **kw)

    @classmethod
    def timeout_after_create(cls, hang_s: float = 2.0, **kw: Any) -> Fault:
        return cls("timeout_after_create", hang_s, **kw)

    @classmethod
    def drop_after_create(cls, **kw: Any) -> Fault:
        return cls("drop_after_create", 0.0, **kw)

    def matches(self, method: str, path: str) -> bool:
        return (not self.method or self.method == method) and self.path_contains in path


class VendorHandler:
    """Base of the per-vendor request handlers.  One instance per simulator."""

    name: ClassVar[str] = ""
    lifecycle: ClassVar[tuple[str, ...]] = ()  # the happy path, for default timelines

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim

    @property
    def secret(self) -> str:
        return self.sim.secrets.get(self.name, "")

    @property
    def event(self) -> WebhookEvent:
        return _current_event.get()

    def handle(
        self, method: str, path: str, query: dict[str, list[str]], headers: Mapping[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        raise NotImplementedError

    def webhook(self, piece: Piece, status: str) -> tuple[bytes, dict[str, str]]:
        raise NotImplementedError

    def error_body(self, status: int, message: str, code: str) -> bytes:
        """The vendor's error envelope (Lob's shape by default)."""
        return json.dumps({"error": {"message": message, "status_code": status, "code": code}}).encode()

    def json_response(
        self, status: int, payload: Any, headers: Mapping[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        return status, {"Content-Type": "application/json", **(headers or {})}, json.dumps(payload).encode()

    def error(self, status: int, message: str, code: str) -> tuple[int, dict[str, str], bytes]:
        return status, {"Content-Type": "application/json"}, self.error_body(status, message, code)


class Simulator:
    """The server plus a thread-safe store of pieces, keys, faults and captured requests."""

    def __init__(
        self,
        *,
        secrets: Mapping[str, str] | None = None,
        clock: Callable[[], float] | None = None,
        key_ttl_s: float = KEY_TTL_S,
        host: str = "127.0.0.1",
        port: int = 0,
        vendors: Iterable[str] | None = None,
    ) -> None:
        from printers.simulator import load_handlers

        load_handlers()
        self.secrets = dict(secrets or {})
        self.key_ttl_s = key_ttl_s
        self._clock = clock or time.time
        self._offset = 0.0
        self._lock = threading.RLock()
        self._ids = itertools.count(1)
        self._pieces: dict[str, dict[str, Piece]] = defaultdict(dict)
        self._keys: dict[tuple[str, str], tuple[str, float]] = {}
        self._faults: dict[str, list[Fault]] = defaultdict(list)
        self.requests: list[CapturedRequest] = []
        # Called with each newly created piece (not replays), outside the lock.
        self.on_create: list[Callable[[Piece], None]] = []
        names = set(vendors) if vendors is not None else set(_HANDLERS)
        self.handlers = {n: cls(self) for n, cls in _HANDLERS.items() if n in names}
        self._server = ThreadingHTTPServer((host, port), _make_request_handler(self))
        self._server.daemon_threads = True
        self._server.block_on_close = False  # a hung "timeout after create" thread must not block stop()
        self._thread: threading.Thread | None = None

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
        """Stop serving (when started) and release the port."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ clock and ids
    def now(self) -> float:
        return self._clock() + self._offset

    def advance(self, seconds: float) -> None:
        """Jump the simulator clock (idempotency-key expiry, event times)."""
        with self._lock:
            self._offset += seconds

    def new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):08d}{random.randrange(16**6):06x}"

    # ------------------------------------------------------------------ store
    def create_or_replay(self, vendor: str, *, key: str | None, build: Callable[[], Piece]) -> tuple[Piece, bool]:
        """Atomically return ``(existing, True)`` for a live key, else store ``build()`` as new."""
        with self._lock:
            if key:
                known = self._keys.get((vendor, key))
                if known and self.now() - known[1] < self.key_ttl_s:
                    return self._pieces[vendor][known[0]], True
            piece = build()
            piece.key = key
            piece.created_at = piece.created_at or self.now()
            self._pieces[vendor][piece.id] = piece
            if key:
                self._keys[(vendor, key)] = (piece.id, self.now())
        for callback in self.on_create:
            callback(piece)
        return piece, False

    def piece(self, vendor: str, piece_id: str) -> Piece | None:
        with self._lock:
            return self._pieces[vendor].get(piece_id)

    def pieces(self, vendor: str) -> list[Piece]:
        with self._lock:
            return list(self._pieces[vendor].values())

    def update(self, vendor: str, piece_id: str, **changes: Any) -> Piece:
        with self._lock:
            piece = self._pieces[vendor][piece_id]
            for name, value in changes.items():
                setattr(piece, name, value)
            return piece

    def physical_pieces(self, vendor: str, key: str | None = None) -> int:
        """Pieces that would print: all of ``vendor``'s, or those under ``key`` (idempotency key or reference).

        Handlers clear ``Piece.physical`` for pieces that will never print (cancelled, test mode, unconfirmed)."""
        with self._lock:
            return sum(
                1 for p in self._pieces[vendor].values() if p.physical and (key is None or key in (p.key, p.reference))
            )

    def total_physical_pieces(self) -> int:
        with self._lock:
            return sum(self.physical_pieces(v) for v in list(self._pieces))

    # ------------------------------------------------------------------ faults
    def inject(self, vendor: str, fault: Fault | int | float | str) -> Fault:
        """Queue a fault: an int is a status code, a float a latency, a str a fault kind."""
        if isinstance(fault, bool):
            raise TypeError("fault must be a Fault, a status code, a latency or a kind name")
        if isinstance(fault, int):
            fault = Fault.status(fault)
        elif isinstance(fault, float):
            fault = Fault.latency(fault)
        elif isinstance(fault, str):
            fault = Fault(fault, 2.0 if fault == "timeout_after_create" else 0.0)
        with self._lock:
            self._faults[vendor].append(fault)
        return fault

    def take_fault(self, vendor: str, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults[vendor]:
                if fault.matches(method, path):
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults[vendor].remove(fault)
                    return fault
        return None

    def captured(self, vendor: str, method: str | None = None) -> list[CapturedRequest]:
        with self._lock:
            return [r for r in self.requests if r.vendor == vendor and (method is None or r.method == method)]

    # ------------------------------------------------------------------ webhooks
    def timeline(
        self,
        vendor: str,
        piece_id: str,
        statuses: Sequence[str] | None = None,
        *,
        spacing_s: float = 60.0,
        duplicates: Iterable[int] = (),
        order: Sequence[int] | None = None,
        missing: Iterable[int] = (),
    ) -> list[WebhookStep]:
        """Steps for one piece: ``statuses`` (default: the handler's lifecycle) happen
        ``spacing_s`` apart; indices in ``duplicates`` are delivered twice, ``missing``
        never, and ``order`` (a permutation of indices) sets the delivery order."""
        piece = self.piece(vendor, piece_id)
        if piece is None:
            raise KeyError(f"{vendor} piece {piece_id!r} does not exist in the simulator")
        names = list(statuses if statuses is not None else self.handlers[vendor].lifecycle)
        dup, skip = set(duplicates), set(missing)
        steps = [
            WebhookStep(vendor, piece_id, s, piece.created_at + (i + 1) * spacing_s, 2 if i in dup else 1)
            for i, s in enumerate(names)
        ]
        indices = list(order) if order is not None else list(range(len(steps)))
        return [steps[i] for i in indices if i not in skip]

    def build_webhooks(self, target: Callable[[str], str] | str, steps: Iterable[WebhookStep]) -> list[Delivery]:
        """Signed deliveries (not sent): each step rendered once, repeated ``repeat`` times."""
        out: list[Delivery] = []
        for step in steps:
            handler = self.handlers[step.vendor]
            piece = self.update(step.vendor, step.piece_id, status=step.status)
            event = WebhookEvent(self.new_id("evt_"), step.status, dt.datetime.fromtimestamp(step.at, tz=dt.UTC))
            token = _current_event.set(event)
            try:
                body, headers = handler.webhook(piece, step.status)
            finally:
                _current_event.reset(token)
            url = target(step.vendor) if callable(target) else target
            out.extend(Delivery(step, url, body, headers) for _ in range(step.repeat))
        return out

    def fire_webhooks(
        self,
        target: Callable[[str], str] | str,
        steps: Iterable[WebhookStep],
        *,
        send: Callable[[str, bytes, dict[str, str]], tuple[int, str]] | None = None,
    ) -> list[Delivery]:
        """POST the signed webhooks in order; ``send`` overrides the transport (e.g. Django's test client)."""
        sender = send or _http_post
        results = []
        for delivery in self.build_webhooks(target, steps):
            code, text = sender(delivery.url, delivery.body, delivery.headers)
            results.append(Delivery(delivery.step, delivery.url, delivery.body, delivery.headers, code, text[:500]))
        return results


def _http_post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    try:
        response = httpx.post(url, content=body, headers=headers, timeout=10.0)
    except httpx.HTTPError as exc:
        return 0, f"{type(exc).__name__}: {exc}"
    return response.status_code, response.text


def _make_request_handler(sim: Simulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

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
                sim.requests.append(CapturedRequest(vendor, self.command, path, query, headers, body))
            fault = sim.take_fault(vendor, self.command, path)
            if fault and fault.kind == "status":
                code = int(fault.value)
                extra = _rate_limit_headers(sim.now()) if code == 429 else {}
                message = "Rate limit exceeded." if code == 429 else "Simulated failure."
                err_code = "rate_limit_exceeded" if code == 429 else "service_unavailable"
                self._send(
                    code, {"Content-Type": "application/json", **extra}, handler.error_body(code, message, err_code)
                )
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
            self._send(status, out_headers, out_body)

        def _send(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _dispatch

    return Handler


def _rate_limit_headers(now: float) -> dict[str, str]:
    # Lob's prose names and its schema names, both (vendors.md §1.4), plus Retry-After.
    reset = str(int(now) + 1)
    return {
        "Retry-After": "1",
        "X-Rate-Limit-Limit": "150",
        "X-Rate-Limit-Remaining": "0",
        "X-Rate-Limit-Reset": reset,
        "ratelimit-limit": "150",
        "ratelimit-remaining": "0",
        "ratelimit-reset": reset,
    }
