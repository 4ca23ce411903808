"""``campaign_mail``'s run as a whole: whose clock decides what is due, when a
run says it waits for an approval, and how many calls it makes at once
(each test written for a ``make mutation`` survivor, docs/mutation.md)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.utils import timezone

from campaigns.mailing import service
from campaigns.models import CampaignRecipient, ProofApproval
from campaigns.tests.test_mailing_stage import ACTOR, one_piece_each, ready_campaign, statuses
from printers import conftest as printer_fixtures
from printers.registry import get_printer_class

pytestmark = pytest.mark.django_db
simulator = printer_fixtures.simulator
S = CampaignRecipient.Status


def around_submit(monkeypatch, around: Callable[[], AbstractContextManager[None]]) -> None:
    """Every sandbox submit runs inside ``around()``, in the thread making the call."""
    printer_class = get_printer_class("sandbox")
    real_submit = printer_class.submit

    def submit(self, request):
        with around():
            return real_submit(self, request)

    monkeypatch.setattr(printer_class, "submit", submit)


def in_days(days: int):
    return timezone.now() + timedelta(days=days)


def test_the_callers_clock_decides_that_the_mail_date_has_come(simulator):
    """A run given a moment (a test's or a backfill's clock) stages and mails
    by that moment's day, not by today's."""
    campaign, _ = ready_campaign(3)
    campaign.mail_date = timezone.localdate() + timedelta(days=3)
    campaign.save()
    report = service.campaign_mail(campaign=campaign, actor=ACTOR, now=in_days(3))
    assert (report.moved[S.SENDING_STAGED], report.moved[S.SCHEDULED], report.moved[S.SENT]) == (3, 0, 3)
    assert statuses(campaign) == {S.SENT: 3}
    assert one_piece_each(simulator, campaign)
    for r in campaign.recipients.all():  # staged for the printer on its day, never scheduled for later
        assert list(r.transitions.order_by("created", "pk").values_list("to_status", flat=True)) == [
            S.SENDING_STAGED,
            S.SENDING,
            S.SENT,
        ]


def test_every_batch_of_a_rolling_run_keeps_the_callers_clock(simulator):
    """Scheduled rows due by the caller's clock are due for every batch of the
    run, not only the first: the batches after it do not read today's date."""
    campaign, _ = ready_campaign(4)
    campaign.mail_date = timezone.localdate() + timedelta(days=3)
    campaign.save()
    assert service.campaign_mail(campaign=campaign, actor=ACTOR).moved[S.SCHEDULED] == 4
    report = service.campaign_mail(
        campaign=campaign, actor=ACTOR, now=in_days(3), batch_size=2, concurrency=1, roll_s=60
    )
    assert report.moved[S.SENT] == 4
    assert statuses(campaign) == {S.SENT: 4}


def test_rows_of_an_older_design_in_an_approved_campaign_do_not_say_waiting_for_approval(simulator):
    """The current design is approved: a row proofed from an older one waits
    to be proofed again, not for anyone's approval, and the run says so."""
    campaign, rows = ready_campaign(2)
    CampaignRecipient.objects.filter(pk=rows[0].pk).update(proof_version="an-older-design")
    report = service.campaign_mail(campaign=campaign, actor=ACTOR)
    assert report.moved[S.SENT] == 1
    assert not report.waiting_for_approval
    assert statuses(campaign) == {S.SENT: 1, S.PROOFED: 1}


def test_an_approval_of_an_older_design_is_no_approval(simulator):
    campaign, _ = ready_campaign(2, approved=False)
    ProofApproval.objects.create(campaign=campaign, design_version="an-older-design")
    report = service.campaign_mail(campaign=campaign, actor=ACTOR)
    assert report.waiting_for_approval
    assert statuses(campaign) == {S.PROOFED: 2}
    assert not simulator.requests


def test_the_configured_concurrency_caps_the_calls_in_flight(simulator, settings, monkeypatch):
    """MAILING_CONCURRENCY = 1 means one call at a time, whatever the batch."""
    settings.MAILING = {**settings.MAILING, "concurrency": 1}
    campaign, _ = ready_campaign(4)
    lock = threading.Lock()
    in_flight, most = [0], [0]

    @contextmanager
    def counted() -> Iterator[None]:
        with lock:
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])
        try:
            time.sleep(0.05)  # long enough for a second thread, were there one, to start its call
            yield
        finally:
            with lock:
                in_flight[0] -= 1

    around_submit(monkeypatch, counted)
    report = service.campaign_mail(campaign=campaign, actor=ACTOR, batch_size=4)
    assert report.moved[S.SENT] == 4
    assert most[0] == 1


def clock(*readings: float) -> SimpleNamespace:
    """A ``time`` for the service whose ``monotonic`` gives these readings,
    then the last one for ever."""
    left = list(readings)
    return SimpleNamespace(monotonic=lambda: left.pop(0) if len(left) > 1 else left[0])


@pytest.mark.parametrize(
    ("roll_s", "readings", "sent"), [(0.5, (0.0, 0.0), 4), (60, (0.0, 60.0), 2), (60, (0.0, 61.0), 2)]
)
def test_a_run_rolls_on_to_the_next_batch_only_within_its_seconds(simulator, monkeypatch, roll_s, readings, sent):
    """``roll_s`` is the run's time: while it lasts (half a second is time
    too) the next batch is claimed behind the last; from that many seconds on
    (the run's clock read when a batch's calls are all under way) it is not,
    and what is left waits for the next run."""
    campaign, _ = ready_campaign(4)
    monkeypatch.setattr(service, "time", clock(*readings))
    report = service.campaign_mail(campaign=campaign, actor=ACTOR, batch_size=2, concurrency=1, roll_s=roll_s)
    assert (report.claimed, report.moved[S.SENT]) == (sent, sent)
    assert statuses(campaign) == ({S.SENT: 4} if sent == 4 else {S.SENT: 2, S.SENDING_STAGED: 2})


def test_the_calls_run_in_named_daemon_threads(simulator, monkeypatch):
    """Ops find the printer calls in a thread dump or a log line by their
    thread's name, and the threads never keep a worker that is shutting down
    alive (its calls' rows go back to the sweeper)."""
    campaign, _ = ready_campaign(2)
    threads: list[tuple[str, bool]] = []

    @contextmanager
    def seen() -> Iterator[None]:
        current = threading.current_thread()
        threads.append((current.name, current.daemon))
        yield

    around_submit(monkeypatch, seen)
    service.campaign_mail(campaign=campaign, actor=ACTOR, batch_size=2, concurrency=2)
    assert len(threads) == 2  # one thread may make both calls
    assert all(name in ("mail-sandbox-0", "mail-sandbox-1") and daemon for name, daemon in threads), threads
