"""Which limit a printer's calls are held to (``campaigns/mailing/limits.py``):
the settings' figure or the vendor's documented one, the shared limiter built
from it with its margin, and the in-process limiter the test settings use.

A wrong figure here is a stream of requests over the vendor's limit (429s, or
a paused account) or a printer used at a fraction of what it allows; nothing
else in the suite builds the shared limiter the way production does (the test
settings use the in-process one).
"""

from __future__ import annotations

import datetime as dt

import pytest

from campaigns.mailing import limits
from common.ratelimit import DEFAULT_PRINTER_LIMITS, DatabaseStore
from printers.base import PrinterError


# ---------------------------------------------------------------------------- the figure
def test_a_printer_limit_set_in_the_settings_wins(settings):
    settings.PRINTER_RATE_LIMITS = {"lob": (90, 3.0)}
    assert limits.printer_limit("lob") == (90, 3.0)


def test_a_printer_the_settings_leave_out_keeps_its_vendors_figure(settings):
    settings.PRINTER_RATE_LIMITS = {"lob": (90, 3.0)}
    assert limits.printer_limit("stannp") == DEFAULT_PRINTER_LIMITS["stannp"] == (300, 60.0)


@pytest.mark.parametrize("configured", [None, {}])
def test_without_settings_every_printer_has_its_vendors_figure(settings, configured):
    if configured is None:
        del settings.PRINTER_RATE_LIMITS
    else:
        settings.PRINTER_RATE_LIMITS = configured
    assert {kind: limits.printer_limit(kind) for kind in DEFAULT_PRINTER_LIMITS} == DEFAULT_PRINTER_LIMITS


def test_a_printer_nobody_documented_gets_a_cautious_limit(settings):
    settings.PRINTER_RATE_LIMITS = {}
    assert limits.printer_limit("a-new-printer") == (60, 60.0)


# ---------------------------------------------------------------------------- the shared limiter
@pytest.mark.parametrize("backend", ["database", None])
def test_the_shared_limiter_holds_each_printer_to_its_limit_with_the_margin(settings, backend):
    """What production builds: named after the printer, the printer's limit,
    and a window 3 % longer than the vendor's period (150 ms for Lob)."""
    if backend is None:
        del settings.RATE_LIMIT_BACKEND  # unset: the database unless Redis is configured
    else:
        settings.RATE_LIMIT_BACKEND = backend
    settings.RATE_LIMIT_REDIS_URL = ""
    settings.Q_CLUSTER = {k: v for k, v in settings.Q_CLUSTER.items() if k != "redis"}  # no Redis broker either
    settings.PRINTER_RATE_LIMITS = {"lob": (150, 5.0), "taylor": (60, 60.0)}
    lob = limits.printer_limiter("lob")
    assert (lob.name, lob.limit, lob.period_s) == ("printer:lob", 150, 5.0)
    assert lob.margin_s == pytest.approx(0.15)
    assert isinstance(lob._store, DatabaseStore)
    assert lob._store.window == dt.timedelta(seconds=5.15)
    taylor = limits.printer_limiter("taylor")
    assert (taylor.name, taylor.limit, taylor.period_s) == ("printer:taylor", 60, 60.0)
    assert taylor.margin_s == pytest.approx(1.8)


# ---------------------------------------------------------------------------- the in-process limiter
@pytest.fixture
def process_limiters(settings, monkeypatch):
    settings.RATE_LIMIT_BACKEND = "process"
    monkeypatch.setattr(limits, "_process_limiters", {})


def test_each_printer_has_its_own_in_process_limiter(settings, process_limiters):
    settings.PRINTER_RATE_LIMITS = {"lob": (150, 5.0), "sandbox": (150, 5.0)}
    lob = limits.printer_limiter("lob")
    assert isinstance(lob, limits.ProcessLimiter)
    assert (lob.limit, lob.period_s) == (150, 5.0)
    assert limits.printer_limiter("lob") is lob
    assert limits.printer_limiter("sandbox") is not lob  # the same figures, another printer


def test_a_permit_is_taken_from_the_printers_own_limiter(settings, process_limiters):
    settings.PRINTER_RATE_LIMITS = {"lob": (150, 5.0)}
    assert limits.printer_permits("lob")() == 0
    assert len(limits.printer_limiter("lob").starts) == 1


def test_a_starved_worker_is_told_why_its_call_is_put_off(settings, monkeypatch):
    class Stale:
        def acquire(self, n: int = 1) -> float:
            return 0.0

        def permit_age(self) -> float:
            return 1.0

    monkeypatch.setattr(limits, "printer_limiter", lambda kind: Stale())
    settings.PRINTER_RATE_LIMITS = {"lob": (150, 5.0)}
    with pytest.raises(PrinterError) as caught:
        limits.printer_permits("lob")()
    assert caught.value.message == (
        "lob: 20 request permits in a row went stale before the request could start "
        "(the worker is starved of CPU); the call is put off"
    )


class FakeTime:
    """``time`` for the in-process limiter: a clock that moves only when it sleeps."""

    def __init__(self, now: float) -> None:
        self.now = now
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("sleep length must be non-negative")
        if len(self.slept) > 10:
            raise AssertionError("the limiter keeps sleeping")
        self.slept.append(seconds)
        self.now += seconds


def test_the_in_process_limiter_is_a_sliding_window(monkeypatch):
    clock = FakeTime(100.0)
    monkeypatch.setattr(limits, "time", clock)
    limiter = limits.ProcessLimiter(2, 10.0)
    assert limiter.acquire() == 0.0
    assert len(limiter.starts) == 1
    clock.now = 103.0
    assert limiter.acquire() == 0.0
    # Full: the third start waits for the oldest (100) to leave the window.
    assert limiter.acquire() == 7.0
    assert clock.now == 110.0
    assert clock.slept == [7.0]
    assert list(limiter.starts) == [103.0, 110.0]


def test_the_in_process_limiter_waits_for_each_of_several_permits(monkeypatch):
    clock = FakeTime(100.0)
    monkeypatch.setattr(limits, "time", clock)
    limiter = limits.ProcessLimiter(1, 10.0)
    limiter.acquire()
    assert limiter.acquire(2) == 20.0
    assert clock.slept == [10.0, 10.0]
