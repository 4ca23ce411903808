"""The one outbound HTTP seam of every outside service (printers, Faraday, and
the coming Pixelixe, Shopify and Stripe clients).

:func:`request` sends through one pooled :class:`httpx.Client` per origin
(scheme, host, port): connections are kept alive and reused across calls and
threads instead of a new TLS handshake per call.  Pools are closed at exit,
by :func:`close_clients`, and a forked worker builds its own (sockets must
not be shared across processes).

Every failure is an :class:`OutboundError` whose ``permanent`` flag says what
a caller does next: retry later with the same idempotency key (False), or give
up and report (True).  Configuration mistakes (no base URL, a key that is not
plain ASCII) are permanent: retrying cannot fix them.
"""

from __future__ import annotations

import atexit
import datetime as dt
import email.utils
import math
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import httpx

TRANSIENT_STATUSES = frozenset({408, 429})
# Checked in this order; reset headers carry either seconds-until-reset
# (Stannp, ratelimit-reset) or an epoch time (Lob X-Rate-Limit-Reset).
RETRY_HEADERS = ("retry-after", "x-rate-limit-reset", "x-ratelimit-reset", "ratelimit-reset")
# A longer wait than this is a vendor's mistake (a Retry-After date in 2037
# would park a task for years): the caller retries after an hour at most.
MAX_RETRY_AFTER_S = 3600.0
# Anything above this is an epoch timestamp rather than a number of seconds.
_EPOCH_THRESHOLD = 10**9
# Header values go on the wire as ASCII; a tab is legal, other control
# characters (CR, LF) would split the header.
_HEADER_CHARS = frozenset(chr(c) for c in range(0x20, 0x7F)) | {"\t"}
_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization"})


class OutboundError(Exception):
    """A call to an outside service failed.

    ``permanent`` is False for outcomes that may succeed on a retry with the
    same idempotency key (network errors, timeouts, 408, 429, 5xx) and True for
    a definitive rejection (other 4xx) or a configuration error.
    ``retry_after`` is the service's requested wait in seconds, at most
    :data:`MAX_RETRY_AFTER_S`.
    """

    def __init__(
        self,
        message: str,
        *,
        permanent: bool = False,
        status_code: int | None = None,
        code: str = "",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.status_code = status_code
        self.code = code
        self.retry_after = retry_after


# ---------------------------------------------------------------------- pooled clients
_clients: dict[str, httpx.Client] = {}
# Origins served inside this process (the printer simulator's in-process mode).
_transports: dict[str, httpx.BaseTransport] = {}
_clients_pid = os.getpid()
_clients_lock = threading.Lock()


def _origin(url: httpx.URL) -> str:
    return f"{url.scheme}://{url.host}:{url.port or (443 if url.scheme == 'https' else 80)}"


def client_for(url: str | httpx.URL) -> httpx.Client:
    """The shared client of ``url``'s origin, created on first use.

    httpx clients may be shared between threads; the lock only guards the
    dict's changes: a client already made is returned without it (every
    printer call asks, from up to ``MAILING_CONCURRENCY`` threads at once, and
    a lock held across an interpreter switch made them queue: 1.4 ms a call
    in the mailing benchmark's profile).  Redirects are never followed: a vendor's 3xx is an answer to
    classify, not a place to send the key to."""
    global _clients_pid
    origin = _origin(httpx.URL(url))
    client = _clients.get(origin)  # a dict read is atomic: no lock on the hot path
    if client is not None and _clients_pid == os.getpid():
        return client
    with _clients_lock:
        if _clients_pid != os.getpid():
            # A forked worker: the parent's sockets are not ours to use or close.
            _clients.clear()
            _clients_pid = os.getpid()
        client = _clients.get(origin)
        if client is None:
            client = _clients[origin] = httpx.Client(
                follow_redirects=False,
                transport=_transports.get(origin),
                event_hooks={"request": [_before_send]},
            )
        return client


def mount_transport(url: str | httpx.URL, transport: httpx.BaseTransport) -> None:
    """Serve ``url``'s origin with ``transport`` instead of the network, in
    this process (the printer simulator's in-process mode, for tests and
    benchmarks).  A pooled client already open for it is replaced."""
    origin = _origin(httpx.URL(url))
    with _clients_lock:
        _transports[origin] = transport
        old = _clients.pop(origin, None)
    if old is not None:
        old.close()


def unmount_transport(url: str | httpx.URL) -> None:
    """Undo :func:`mount_transport`: the origin goes back to the network."""
    origin = _origin(httpx.URL(url))
    with _clients_lock:
        _transports.pop(origin, None)
        old = _clients.pop(origin, None)
    if old is not None:
        old.close()


def close_clients(url: str | httpx.URL | None = None) -> None:
    """Close the pooled client of ``url``'s origin, or every one; the next call opens a new one."""
    with _clients_lock:
        if url is None:
            closing = list(_clients.values())
            _clients.clear()
        else:
            found = _clients.pop(_origin(httpx.URL(url)), None)
            closing = [found] if found is not None else []
    for client in closing:
        client.close()


atexit.register(close_clients)


# ---------------------------------------------------------------------- right before sending
_gate = threading.local()


@contextmanager
def before_each_request(hook: Callable[[], object], *, to: str) -> Iterator[None]:
    """Call ``hook`` in this thread right before each request to ``to``'s
    origin (scheme, host, port) sent inside the block, once the request is
    built (body encoded) and just before it goes to the connection: the
    mailing stage takes its printer's rate-limit permit there, so the time
    between a permit and the request reaching the printer holds no payload
    building and as few thread switches as there can be (docs/ratelimits.md).
    Requests to other origins are not the hook's business (another service's
    call must not spend a printer's permit).  What ``hook`` raises propagates
    and nothing is sent.  Blocks nest: the innermost one decides."""
    try:
        origin: str | None = _origin(httpx.URL(to))
    except httpx.InvalidURL:  # the request itself is refused as misconfigured, before any hook
        origin = None
    previous = getattr(_gate, "hook", None)
    _gate.hook = (origin, hook)
    try:
        yield
    finally:
        _gate.hook = previous


def _before_send(request: httpx.Request) -> None:
    gate = getattr(_gate, "hook", None)
    if gate is not None and gate[0] == _origin(request.url):
        gate[1]()


# ---------------------------------------------------------------------- request
def _checked_url(method: str, url: str, service: str, error: type[OutboundError]) -> httpx.URL:
    """``url`` when it is an http(s) address with a host; a permanent error otherwise.

    An empty base URL gives a bare path ("/prints"): httpx would call that a
    transport failure and the caller would retry it forever."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise error(
            f"{method} {url!r} not sent: {service} is misconfigured (the address is not a valid URL: {exc})",
            permanent=True,
        ) from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise error(
            f"{method} {url!r} not sent: {service} is misconfigured "
            "(its base URL is missing or is not an http(s) address)",
            permanent=True,
        )
    return parsed


def _check_header_text(
    method: str, url: str, headers: Mapping[str, str], auth: tuple[str, str] | None, error: type[OutboundError]
) -> None:
    """Refuse header values (and Basic credentials) that are not plain ASCII.

    httpx raises ``UnicodeEncodeError`` for a non-ASCII header and silently
    UTF-8-encodes Basic credentials; both are configuration mistakes (a key
    pasted with a curly quote), so they are permanent and name the header,
    never its value (it may be a secret)."""
    fields = [(name, value, name.lower() in _SECRET_HEADERS) for name, value in headers.items()]
    fields += [("Authorization", part, True) for part in auth or ()]
    for name, value, secret in fields:
        if not set(name) <= _HEADER_CHARS or not set(str(value)) <= _HEADER_CHARS:
            what = "API key" if secret else f"{name} header"
            raise error(
                f"{method} {url} not sent: the {what} holds a character that is not plain ASCII text "
                "(keys may use only printable ASCII, no accents, curly quotes or line breaks)",
                permanent=True,
            )


def request(
    method: str,
    url: str,
    *,
    timeout: float,
    headers: Mapping[str, str] | None = None,
    json: Any = None,
    data: Mapping[str, Any] | None = None,
    params: Mapping[str, Any] | None = None,
    auth: tuple[str, str] | None = None,
    error: type[OutboundError] = OutboundError,
    service: str = "the service",
) -> httpx.Response:
    """Send one request on the origin's pooled client; failures raise ``error``
    (any :class:`OutboundError` subclass, so a client needs no translation step),
    with messages that name ``service``.

    Network failures and timeouts are transient; a malformed request (bad
    URL, non-ASCII header) is permanent.  No retries here: the caller retries
    with the same idempotency key, so a slow service is never hit twice from
    inside one call."""
    parsed = _checked_url(method, url, service, error)
    sent_headers = dict(headers or {})
    _check_header_text(method, url, sent_headers, auth, error)
    try:
        return client_for(parsed).request(
            method,
            parsed,
            headers=sent_headers,
            json=json,
            data=dict(data) if data is not None else None,
            params=dict(params) if params is not None else None,
            auth=auth,
            timeout=httpx.Timeout(timeout),
        )
    except httpx.TimeoutException as exc:
        # The service may have acted (created the piece): the outcome is unknown.
        raise error(f"{method} {url}: timed out after {timeout:g}s ({type(exc).__name__})") from exc
    except (httpx.LocalProtocolError, httpx.UnsupportedProtocol) as exc:
        # Our request is malformed: the same request fails the same way every time.
        raise error(f"{method} {url} not sent: {type(exc).__name__}: {exc}", permanent=True) from exc
    except httpx.HTTPError as exc:
        raise error(f"{method} {url}: {service} is unreachable (network error: {type(exc).__name__}: {exc})") from exc


# ---------------------------------------------------------------------- answers
def retry_after_seconds(
    headers: Mapping[str, str], *, now: float | None = None, ceiling: float = MAX_RETRY_AFTER_S
) -> float | None:
    """Seconds to wait, from Retry-After or a rate-limit reset header (any case),
    between 0 and ``ceiling``; None when no header holds a usable value."""
    lowered = {k.lower(): v for k, v in headers.items()}
    current = time.time() if now is None else now
    for name in RETRY_HEADERS:
        raw = (lowered.get(name) or "").strip()
        if not raw:
            continue
        try:
            value = float(raw)
        except ValueError:
            try:  # Retry-After may be an HTTP date.
                when = email.utils.parsedate_to_datetime(raw)
            except (TypeError, ValueError):
                continue
            if when.tzinfo is None:
                when = when.replace(tzinfo=dt.UTC)
            value = when.timestamp() - current
        else:
            if not math.isfinite(value):  # "inf"/"nan" would stall or skip the retry: ignore it
                continue
            if value > _EPOCH_THRESHOLD:
                value = value - current
        return min(max(0.0, value), ceiling)
    return None


def error_message(response: httpx.Response) -> tuple[str, str]:
    """(message, code) from the usual error envelopes, or the raw text."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:500], ""
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):  # Lob, IntelliPrint: {"error": {"message", "code"}}
            return str(error.get("message") or ""), str(error.get("code") or error.get("type") or "")
        if isinstance(error, str):  # Stannp: {"success": false, "error": "..."}
            return error, ""
        if "message" in body:
            return str(body["message"]), str(body.get("code") or "")
    return str(body)[:500], ""


def raise_for_status(response: httpx.Response, *, service: str, error: type[OutboundError] = OutboundError) -> None:
    """Return on 2xx; raise a transient (408, 429, 5xx) or permanent (any other) ``error``."""
    status = response.status_code
    if 200 <= status < 300:
        return
    message, code = error_message(response)
    text = f"{service} answered HTTP {status}" + (f" {code}" if code else "") + (f": {message}" if message else "")
    if status in TRANSIENT_STATUSES or status >= 500:
        raise error(
            text, permanent=False, status_code=status, code=code, retry_after=retry_after_seconds(response.headers)
        )
    raise error(text, permanent=True, status_code=status, code=code)
