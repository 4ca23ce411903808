"""Each printer's request rate, shared by every worker on every machine.

``printer_limiter(kind)`` is the limiter of ``common.ratelimit`` named after
the printer, with the printer's limit from ``settings.PRINTER_RATE_LIMITS``
({kind: (requests, seconds)}; docs/ratelimits.md has each vendor's figure).
Every call to the printer (a lookup or a submit) takes one permit first.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from django.conf import settings

from common.ratelimit import DEFAULT_PRINTER_LIMITS, limiter_for
from printers.base import PrinterError

MARGIN = 0.03
# A permit older than this share of the period when the request is about to
# go is thrown away and another taken.  Two requests' grant-to-arrival delays
# may differ by at most the margin; with every permit used within FRESH of its
# grant, they differ by at most FRESH plus the time from the check to the bytes
# leaving, for which the last third of the margin is left (50 ms for Lob).
FRESH = MARGIN * 2 / 3
# ... but never less than this: a period of a few milliseconds (a limit that is
# really "no limit", as the benchmarks set) cannot promise a margin anyway.
FRESH_MIN_S = 0.05
# Permits in a row thrown away before the call is given up for now (transient).
MAX_STALE = 20


def printer_limit(kind: str) -> tuple[int, float]:
    """(requests, seconds) for ``kind``: the settings (each vendor's documented
    limit unless overridden), or common.ratelimit's defaults."""
    configured: dict[str, Any] = dict(getattr(settings, "PRINTER_RATE_LIMITS", None) or DEFAULT_PRINTER_LIMITS)
    limit, period = configured.get(kind) or DEFAULT_PRINTER_LIMITS.get(kind) or (60, 60.0)
    return int(limit), float(period)


def printer_limiter(kind: str) -> Any:
    limit, period = printer_limit(kind)
    if getattr(settings, "RATE_LIMIT_BACKEND", "") == "process":
        return _process_limiter(kind, limit, period)
    # The window is the vendor's period plus a margin for the time between a
    # permit and the request reaching the printer (thread scheduling, the
    # connection): 3 %, 150 ms for Lob, measured enough on a loaded machine
    # (bench/README.md, fan-out), at the cost of 3 % of the vendor's rate.
    return limiter_for(f"printer:{kind}", limit=limit, period_s=period, margin_s=period * MARGIN)


def printer_permits(kind: str) -> Callable[[], int]:
    """A function that blocks until a request to printer ``kind`` may start
    *now*, and returns how many permits it threw away on the way.

    The limiter records a start when it grants the permit; the vendor counts
    it when the request arrives.  The margin covers the delay between the two,
    but a thread starved of CPU (a machine with more runnable threads than
    cores) can sit longer than the margin between the store's step and the
    request, and its request then lands in the next window, over the limit:
    seen in the fan-out bench with the machine's load at 4 on 2 cores.  So a
    permit granted more than two thirds of the margin ago is thrown
    away (its slot stays taken: the limit only gets safer) and another taken.
    After ``MAX_STALE`` in a row the call is put off as a transient failure."""
    limiter = printer_limiter(kind)
    _, period = printer_limit(kind)
    fresh_s = max(period * FRESH, FRESH_MIN_S)

    def take() -> int:
        for stale in range(MAX_STALE):
            limiter.acquire(1)
            if limiter.permit_age() <= fresh_s:
                return stale
        raise PrinterError(
            f"{kind}: {MAX_STALE} request permits in a row went stale before the request could start "
            "(the worker is starved of CPU); the call is put off",
            code="stale_permits",
        )

    return take


class ProcessLimiter:
    """A sliding window of start times in this process only: for tests, which
    run inside a transaction the shared database limiter refuses to join (the
    shared limiters have their own tests, common/tests/test_ratelimit.py)."""

    def __init__(self, limit: int, period_s: float) -> None:
        self.limit, self.period_s = limit, period_s
        self.starts: deque[float] = deque()
        self.lock = threading.Lock()
        self.granted = threading.local()

    def acquire(self, n: int = 1) -> float:
        waited = 0.0
        for _ in range(n):
            while True:
                with self.lock:
                    now = time.monotonic()
                    while self.starts and self.starts[0] <= now - self.period_s:
                        self.starts.popleft()
                    if len(self.starts) < self.limit:
                        self.starts.append(now)
                        self.granted.at = now
                        break
                    wait = self.starts[0] + self.period_s - now
                time.sleep(wait)
                waited += wait
        return waited

    def permit_age(self) -> float:
        at = getattr(self.granted, "at", None)
        return float("inf") if at is None else time.monotonic() - at


_process_limiters: dict[tuple[str, int, float], ProcessLimiter] = {}


def _process_limiter(kind: str, limit: int, period: float) -> ProcessLimiter:
    key = (kind, limit, period)
    if key not in _process_limiters:
        _process_limiters[key] = ProcessLimiter(limit, period)
    return _process_limiters[key]
