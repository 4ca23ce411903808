"""The printers' side of the one outbound HTTP seam (:mod:`common.http`).

All vendor calls go through :func:`request`, so tests can patch one function
(or point base URLs at the local simulator) and never touch the network.  It
uses the pooled client of the printer's base URL and the printer timeout, and
raises :class:`PrinterError` (an :class:`~common.http.OutboundError`).
:func:`raise_for_status` classifies an answer: transient (408, 429, 5xx,
network: retry with the same idempotency key) or permanent (any other 4xx,
configuration errors: the recipient goes to Error).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx
from django.conf import settings

from common import http as outbound
from common.http import MAX_RETRY_AFTER_S, RETRY_HEADERS, TRANSIENT_STATUSES, retry_after_seconds
from printers.base import PrinterError

__all__ = [
    "MAX_RETRY_AFTER_S",
    "RETRY_HEADERS",
    "TRANSIENT_STATUSES",
    "json_body",
    "raise_for_status",
    "request",
    "retry_after_seconds",
]


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
    """Send one request to a printer (timeout ``settings.PRINTER_TIMEOUT_S`` unless given)."""
    return outbound.request(
        method,
        url,
        timeout=float(timeout if timeout is not None else settings.PRINTER_TIMEOUT_S),
        headers=headers,
        json=json,
        data=data,
        params=params,
        auth=auth,
        error=PrinterError,
    )


def raise_for_status(response: httpx.Response, *, vendor: str) -> None:
    """Return on 2xx; raise a transient or permanent :class:`PrinterError` otherwise."""
    outbound.raise_for_status(response, service=vendor, error=PrinterError)


def json_body(response: httpx.Response, *, vendor: str) -> Any:
    """The decoded JSON of an answer already found successful; ``{}`` for an empty body (a 204).

    Anything else that is not JSON (an HTML page from a proxy) is a transient
    :class:`PrinterError`: the call may have had its effect, so the caller retries
    with the same key rather than giving up on a piece that may exist."""
    if not response.content:
        return {}
    try:
        return response.json()
    except ValueError:
        raise PrinterError(f"{vendor} answered HTTP {response.status_code} with a non-JSON body") from None
