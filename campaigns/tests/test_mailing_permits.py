"""``campaigns.mailing.limits.printer_permits``: a permit that went stale before
its request could start is thrown away, never used (docs/ratelimits.md)."""

from __future__ import annotations

import pytest

from campaigns.mailing import limits, service
from campaigns.models import CampaignRecipient
from campaigns.tests.test_mailing_stage import ACTOR, ready_campaign
from printers import conftest as printer_fixtures
from printers.base import PrinterError
from printers.registry import get_printer_class


class AgingLimiter:
    """A limiter whose permits are as old as the script says, one per acquire."""

    def __init__(self, ages: list[float]) -> None:
        self.ages = list(ages)
        self.acquired = 0
        self.age = float("inf")

    def acquire(self, n: int = 1) -> float:
        self.acquired += n
        self.age = self.ages.pop(0)
        return 0.0

    def permit_age(self) -> float:
        return self.age


@pytest.fixture
def lob_limiter(monkeypatch, settings):
    settings.PRINTER_RATE_LIMITS = {"lob": (150, 5.0)}

    def install(ages: list[float]) -> AgingLimiter:
        limiter = AgingLimiter(ages)
        monkeypatch.setattr(limits, "printer_limiter", lambda kind: limiter)
        return limiter

    return install


def test_a_fresh_permit_is_used_at_once(lob_limiter):
    limiter = lob_limiter([0.01])
    assert limits.printer_permits("lob")() == 0
    assert limiter.acquired == 1


def test_stale_permits_are_thrown_away_until_a_fresh_one_comes(lob_limiter):
    # Lob: 5 s period, 3 % margin (150 ms); fresh means at most two thirds of it, 100 ms.
    limiter = lob_limiter([0.4, 0.101, 0.1])
    assert limits.printer_permits("lob")() == 2
    assert limiter.acquired == 3


def test_a_starved_worker_puts_the_call_off_as_a_transient_failure(lob_limiter):
    limiter = lob_limiter([1.0] * limits.MAX_STALE)
    with pytest.raises(PrinterError) as caught:
        limits.printer_permits("lob")()
    assert not caught.value.permanent
    assert caught.value.code == "stale_permits"
    assert limiter.acquired == limits.MAX_STALE


def test_the_process_limiter_reports_its_permits_age():
    limiter = limits.ProcessLimiter(2, 5.0)
    assert limiter.permit_age() == float("inf")
    limiter.acquire()
    assert 0 <= limiter.permit_age() < 0.5


# ---------------------------------------------------------------------------- when the permit is taken
simulator = printer_fixtures.simulator


@pytest.mark.django_db
def test_the_permit_is_taken_once_the_request_is_built_right_before_it_goes(simulator, monkeypatch):
    """The printer module builds the request (payload, validation, encoding)
    before the permit is taken, not after: time spent building between a
    permit and the request reaching the printer would put it past its slot
    (bench/README.md, "Rolling runs")."""
    campaign, _ = ready_campaign(2)
    events: list[str] = []
    printer_class = get_printer_class("sandbox")
    real_submit = printer_class.submit

    def submit(self, request):
        events.append("build")
        return real_submit(self, request)

    def permits(kind):
        def take() -> int:
            events.append("permit")
            return 0

        return take

    monkeypatch.setattr(printer_class, "submit", submit)
    monkeypatch.setattr(service, "printer_permits", permits)
    report = service.campaign_mail(campaign=campaign, actor=ACTOR, batch_size=2, concurrency=1)
    assert report.moved[CampaignRecipient.Status.SENT] == 2
    assert events == ["build", "permit", "build", "permit"]
    assert report.calls == 2


@pytest.mark.django_db
def test_a_run_adds_up_the_stale_permits_of_all_its_calls_and_says_so(simulator, monkeypatch, caplog):
    """Ops read a starved worker from the run's report and its warning: every
    call's thrown-away permits count, not only the last call's."""
    campaign, _ = ready_campaign(3)
    thrown_away = iter([2, 0, 1])
    monkeypatch.setattr(service, "printer_permits", lambda kind: lambda: next(thrown_away))
    with caplog.at_level("WARNING", logger="campaigns.mailing.service"):
        report = service.campaign_mail(campaign=campaign, actor=ACTOR, batch_size=3, concurrency=1)
    assert (report.moved[CampaignRecipient.Status.SENT], report.calls, report.stale_permits) == (3, 3, 3)
    assert (
        "sandbox: 3 request permits went stale before their call could start and were thrown away "
        "(workers starved of CPU?)"
    ) in caplog.text


# ---------------------------------------------------------------------------- the claim's lease
@pytest.mark.parametrize(
    ("kind", "batch", "at_least_s"),
    [
        ("lob", 100, 600),  # the configured floor: Lob's limit never decides
        # Six requests a row at 100 a minute: 100 rows are six minutes of permits, doubled.
        ("intelliprint", 100, 2 * 6 * 60),
        # Two requests a row at 60 a minute: 1,000 rows are 33 minutes of permits, doubled.
        ("taylor", 1000, 2 * 2000),
    ],
)
def test_a_batchs_lease_outlasts_the_time_its_requests_take_at_the_printers_limit(settings, kind, batch, at_least_s):
    """Else the sweeper hands rows back while their calls still wait for
    permits, and a second worker takes them (docs/mailing.md)."""
    settings.PRINTER_RATE_LIMITS = {}
    settings.PRINTER_TIMEOUT_S = 20
    settings.MAILING = {**settings.MAILING, "lease_s": 600}
    lease = service._lease(get_printer_class(kind), batch, 16)
    assert lease.total_seconds() >= at_least_s
    assert lease.total_seconds() < at_least_s * 1.5  # and not needlessly long: a crashed worker's rows wait it out


def test_a_batchs_lease_outlasts_its_calls_timing_out_round_after_round(settings):
    """A printer with room to spare under its limit: the worst case is every
    call timing out, a lookup and a submit per row, one round of threads
    after another: 100 rows on 4 threads are 25 rounds of two 30 s
    timeouts, 1,500 s, doubled for a rolling run's queued batch."""
    settings.PRINTER_RATE_LIMITS = {"sandbox": (10_000, 1.0)}
    settings.PRINTER_TIMEOUT_S = 30
    settings.MAILING = {**settings.MAILING, "lease_s": 600}
    assert service._lease(get_printer_class("sandbox"), 100, 4).total_seconds() == 3000


def test_a_batchs_lease_is_at_least_the_configured_one(settings):
    """MAILING_LEASE_S is the floor: a small, fast batch still holds its rows
    that long (a worker that dies mid-batch gives them back after it)."""
    settings.PRINTER_RATE_LIMITS = {}
    settings.PRINTER_TIMEOUT_S = 1
    settings.MAILING = {**settings.MAILING, "lease_s": 1200}
    assert service._lease(get_printer_class("lob"), 10, 16).total_seconds() == 1200
