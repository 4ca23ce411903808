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
from typing import Any

from django.conf import settings

from common.ratelimit import DEFAULT_PRINTER_LIMITS, limiter_for

MARGIN = 0.03


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


class ProcessLimiter:
    """A sliding window of start times in this process only: for tests, which
    run inside a transaction the shared database limiter refuses to join (the
    shared limiters have their own tests, common/tests/test_ratelimit.py)."""

    def __init__(self, limit: int, period_s: float) -> None:
        self.limit, self.period_s = limit, period_s
        self.starts: deque[float] = deque()
        self.lock = threading.Lock()

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
                        break
                    wait = self.starts[0] + self.period_s - now
                time.sleep(wait)
                waited += wait
        return waited


_process_limiters: dict[tuple[str, int, float], ProcessLimiter] = {}


def _process_limiter(kind: str, limit: int, period: float) -> ProcessLimiter:
    key = (kind, limit, period)
    if key not in _process_limiters:
        _process_limiters[key] = ProcessLimiter(limit, period)
    return _process_limiters[key]
