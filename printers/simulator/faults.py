"""Fault injection for the simulator: what the next matching request should suffer.

The HTTP server takes a matching fault before handing a request to the vendor handler
and applies it there (answer a status, sleep, or hang/drop after the piece was created).
"""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass
from typing import Any


@dataclass
class Fault:
    """A fault for the next matching request: ``latency`` (sleep ``value`` s, then answer),
    ``status`` (answer ``int(value)`` without handling; 429 carries rate-limit headers),
    ``status_after_create`` (handle, then answer ``int(value)`` anyway: a 5xx or 429 whose
    piece exists, so a client that retries with a new key prints twice),
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
    def status_after_create(cls, code: int, **kw: Any) -> Fault:
        return cls("status_after_create", float(code), **kw)

    @classmethod
    def timeout_after_create(cls, hang_s: float = 2.0, **kw: Any) -> Fault:
        return cls("timeout_after_create", hang_s, **kw)

    @classmethod
    def drop_after_create(cls, **kw: Any) -> Fault:
        return cls("drop_after_create", 0.0, **kw)

    def matches(self, method: str, path: str) -> bool:
        return (not self.method or self.method == method) and self.path_contains in path


class FaultQueue:
    """Pending faults per vendor, consumed in injection order; guarded by the simulator's lock."""

    def __init__(self, lock: threading.RLock) -> None:
        self._lock = lock
        self._faults: dict[str, list[Fault]] = defaultdict(list)

    def add(self, vendor: str, fault: Fault | int | float | str) -> Fault:
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

    def take(self, vendor: str, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults[vendor]:
                if fault.matches(method, path):
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults[vendor].remove(fault)
                    return fault
        return None


def rate_limit_headers(now: float) -> dict[str, str]:
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
