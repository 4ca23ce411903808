"""The one outbound HTTP seam of every printer client.

All vendor calls go through :func:`request`, so tests can patch one function
(or point base URLs at the local simulator) and never touch the network.
:func:`raise_for_status` turns an HTTP answer into our error classification:
transient (408, 429, 5xx, network: retry with the same idempotency key) or
permanent (any other 4xx: the recipient goes to Error).
"""

from __future__ import annotations

import datetime as dt
import email.utils
import math
import time
from collections.abc import Mapping
from typing import Any

import httpx
from django.conf import settings

from printers.base import PrinterError

TRANSIENT_STATUSES = frozenset({408, 429})
# Checked in this order; reset headers carry either seconds-until-reset
# (Stannp, ratelimit-reset) or an epoch time (Lob X-Rate-Limit-Reset).
RETRY_HEADERS = ("retry-after", "x-rate-limit-reset", "x-ratelimit-reset", "ratelimit-reset")
# Anything above this is an epoch timestamp rather than a number of seconds.
_EPOCH_THRESHOLD = 10**9


def request(
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    json: Any = None,
    data: Mapping[str, Any] | None = None,
    params: Mapping[str, Any] | None = None,
    auth: tuple[str, str] | None = None,
    timeout: float | None = None,
) -> httpx.Response:
    """Send one request; network failures and timeouts become transient errors.

    No retries here: the caller (a task) retries with the same idempotency key,
    so a slow printer is never hit twice from inside one call.
    """
    limit = float(timeout if timeout is not None else settings.PRINTER_TIMEOUT_S)
    try:
        with httpx.Client(timeout=httpx.Timeout(limit), follow_redirects=False) as client:
            return client.request(
                method,
                url,
                headers=dict(headers or {}),
                json=json,
                data=dict(data) if data is not None else None,
                params=dict(params) if params is not None else None,
                auth=auth,
            )
    except httpx.TimeoutException as exc:
        # The printer may have created the piece: the outcome is unknown.
        raise PrinterError(f"{method} {url}: timed out after {limit:g}s ({type(exc).__name__})") from exc
    except httpx.HTTPError as exc:
        raise PrinterError(f"{method} {url}: network error ({type(exc).__name__}: {exc})") from exc


def retry_after_seconds(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds to wait, from Retry-After or a rate-limit reset header (any case)."""
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
            return max(0.0, when.timestamp() - current)
        if not math.isfinite(value):  # "inf"/"nan" would stall or skip the retry: ignore it
            continue
        if value > _EPOCH_THRESHOLD:
            value = value - current
        return max(0.0, value)
    return None


def _vendor_message(response: httpx.Response) -> tuple[str, str]:
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


def raise_for_status(response: httpx.Response, *, vendor: str) -> None:
    """Return on 2xx; raise a transient or permanent :class:`PrinterError` otherwise."""
    status = response.status_code
    if 200 <= status < 300:
        return
    message, code = _vendor_message(response)
    text = f"{vendor} answered HTTP {status}" + (f" {code}" if code else "") + (f": {message}" if message else "")
    if status in TRANSIENT_STATUSES or status >= 500:
        raise PrinterError(
            text,
            permanent=False,
            status_code=status,
            code=code,
            retry_after=retry_after_seconds(response.headers),
        )
    raise PrinterError(text, permanent=True, status_code=status, code=code)
