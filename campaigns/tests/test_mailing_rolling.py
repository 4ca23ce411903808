"""A rolling mailing run (``campaign_mail(roll_s=…)``): the next batch is
claimed while the last calls of the one before are in flight, so the printer
threads never idle between batches (bench/README.md, the fan-out), and each
batch is still claimed, called and recorded exactly once."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from types import SimpleNamespace
from typing import Any

import pytest
from django.utils import timezone

from campaigns.mailing import service
from campaigns.models import CampaignRecipient, Organization, RecipientTransition
from campaigns.tests.test_mailing_stage import ACTOR, creates, one_piece_each, ready_campaign, statuses
from mailpieces.models import Mailpiece
from printers import conftest as printer_fixtures

pytestmark = pytest.mark.django_db
simulator = printer_fixtures.simulator
S = CampaignRecipient.Status


def roll(campaign, **kwargs: Any) -> service.MailReport:
    return service.campaign_mail(campaign=campaign, actor=ACTOR, batch_size=4, concurrency=2, roll_s=60, **kwargs)


def test_a_rolling_run_claims_the_next_batch_before_recording_the_last_and_mails_each_once(simulator, monkeypatch):
    campaign, _ = ready_campaign(12)
    real = service._record
    claimed_ahead: list[int] = []  # at each record: rows held by the batch claimed after it

    def record(campaign_, rows, outcomes, token, actor, now, *rest):
        others = CampaignRecipient.objects.filter(status=S.SENDING).exclude(claim_token=token)
        claimed_ahead.append(others.count())
        return real(campaign_, rows, outcomes, token, actor, now, *rest)

    monkeypatch.setattr(service, "_record", record)
    report = roll(campaign)
    assert claimed_ahead == [4, 4, 0]  # the last batch has nothing behind it
    assert (report.claimed, report.moved[S.SENT], report.calls) == (12, 12, 12)
    assert statuses(campaign) == {S.SENT: 12}
    assert one_piece_each(simulator, campaign)
    assert creates(simulator, "sandbox") == 12
    assert Mailpiece.objects.count() == 12
    sent = RecipientTransition.objects.filter(recipient__campaign=campaign, to_status=S.SENT)
    assert set(Counter(sent.values_list("recipient_id", flat=True)).values()) == {1}


def test_without_a_roll_a_run_is_one_batch(simulator):
    campaign, _ = ready_campaign(12)
    report = service.campaign_mail(campaign=campaign, actor=ACTOR, batch_size=4, concurrency=2)
    assert (report.claimed, report.moved[S.SENT]) == (4, 4)
    assert statuses(campaign) == {S.SENT: 4, S.SENDING_STAGED: 8}


def stop_after_first_batch(monkeypatch, stop) -> None:
    """``stop()`` runs once every call of the first batch has started, before
    the run asks whether it may claim the next."""
    real = service._CallPool.wait_started
    done: list[int] = []

    def wait_started(pool: Any) -> None:
        real(pool)
        if not done:
            done.append(1)
            stop()

    monkeypatch.setattr(service._CallPool, "wait_started", wait_started)


def test_a_campaign_paused_during_a_rolling_run_claims_no_further_batch(simulator, monkeypatch):
    campaign, _ = ready_campaign(12)
    stop_after_first_batch(monkeypatch, lambda: type(campaign).objects.filter(pk=campaign.pk).update(paused=True))
    report = roll(campaign)
    assert report.paused
    assert (report.claimed, report.moved[S.SENT]) == (4, 4)  # the batch in flight is recorded, nothing more
    assert statuses(campaign) == {S.SENT: 4, S.SENDING_STAGED: 8}
    assert creates(simulator, "sandbox") == 4


def test_billing_lost_during_a_rolling_run_claims_no_further_batch(simulator, monkeypatch):
    campaign, _ = ready_campaign(12)
    org = campaign.organization_id
    stop_after_first_batch(monkeypatch, lambda: Organization.objects.filter(pk=org).update(subscription_active=False))
    report = roll(campaign)
    assert report.billing_problem == "no active subscription"
    assert (report.claimed, report.moved[S.SENT]) == (4, 4)
    assert statuses(campaign) == {S.SENT: 4, S.SENDING_STAGED: 8}
    assert creates(simulator, "sandbox") == 4  # 0 calls for the org that cannot pay


def test_a_call_that_fails_outside_its_own_handling_leaves_its_row_unknown_and_the_run_goes_on(
    simulator, monkeypatch, caplog
):
    """A bug past ``_send_one``'s own error handling finishes the row as an
    unknown outcome (retried later under the same key) and the thread goes on
    with the next call: the batch is recorded, nothing hangs."""
    campaign, rows = ready_campaign(8)
    real = service._send_one
    victim = rows[0].pk

    def send_one(printer, request, *args: Any) -> Any:
        if request.metadata.get("recipient_id") == str(victim):
            raise RuntimeError("thread died")
        return real(printer, request, *args)

    monkeypatch.setattr(service, "_send_one", send_one)
    with caplog.at_level("ERROR", logger="campaigns.mailing.service"):
        report = service.campaign_mail(campaign=campaign, actor=ACTOR, batch_size=8, concurrency=1, roll_s=60)
    assert report.moved[S.SENT] == 7  # one thread: it made the seven other calls after the failure
    assert statuses(campaign) == {S.SENT: 7, S.SENDING_STAGED: 1}
    assert CampaignRecipient.objects.get(pk=victim).error_detail == service._NO_CALL.detail
    # What ops read: which recipient, and the traceback.
    [logged] = [r for r in caplog.records if r.name == "campaigns.mailing.service"]
    assert logged.getMessage() == f"mailing call for recipient {victim} failed outside the call's own handling"
    assert logged.exc_info is not None
    assert "thread died" in str(logged.exc_info[1])


def rolls_seen(monkeypatch, settings, roll_s: float) -> list[float]:
    """Set ``MAILING_ROLL_S``; the list fills with the roll each mailing run the runner makes is given."""
    from campaigns.pipeline import runner

    settings.MAILING = {**settings.MAILING, "roll_s": roll_s}
    seen: list[float] = []
    real = runner.campaign_mail

    def spy(**kwargs: Any) -> service.MailReport:
        seen.append(kwargs["roll_s"])
        return real(**kwargs)

    monkeypatch.setattr(runner, "campaign_mail", spy)
    return seen


@pytest.mark.parametrize("roll_s", [0.0, 10.0])
def test_the_runner_rolls_for_the_configured_seconds(simulator, monkeypatch, settings, roll_s):
    """``MAILING_ROLL_S`` (settings.MAILING["roll_s"]) reaches every mailing run the runner makes."""
    from campaigns.pipeline import runner

    seen = rolls_seen(monkeypatch, settings, roll_s)
    campaign, _ = ready_campaign(3)
    runner.campaign_advance(campaign.pk, actor=ACTOR, batch_size=2)
    assert seen
    assert set(seen) == {roll_s}
    assert statuses(campaign) == {S.SENT: 3}


def test_a_rolling_run_claims_nothing_new_past_the_tasks_deadline(simulator, monkeypatch, settings):
    """The task's budget (80 % of Q_TIMEOUT_S) bounds the roll: with the
    deadline already passed the mailing run is one batch, never 10 s more."""
    import time

    from campaigns.pipeline import runner

    seen = rolls_seen(monkeypatch, settings, 10.0)
    campaign, _ = ready_campaign(3)
    runner._mail_run(campaign, ACTOR, 2, time.monotonic() - 1)
    assert seen == [0.0]
    runner._mail_run(campaign, ACTOR, 2, time.monotonic() + 3)
    assert 0 < seen[1] <= 3
    runner._mail_run(campaign, ACTOR, 2, None)  # no deadline (a command's --once): the setting
    assert seen[2] == 10.0


def test_the_pool_says_its_calls_are_under_way_only_once_every_batch_sents_calls_are(monkeypatch):
    """A rolling run claims its next batch when ``wait_started`` returns: that
    must be when every call queued so far has a thread, the batch sent last as
    well as the ones before it, or the run claims (and queues) ahead of calls
    still waiting."""
    release = {pk: threading.Event() for pk in (1, 2, 3, 4)}
    started: list[int] = []

    def send_one(printer, request, seen_before, give_up, permit) -> service.SendOutcome:
        started.append(request)
        release[request].wait(10)
        return service.SendOutcome(transient=True)

    def row(pk: int) -> Any:
        return SimpleNamespace(pk=pk, first_attempt_at=None, attempt=0)

    def until_started(count: int) -> None:
        deadline = time.monotonic() + 10
        while len(started) < count:
            assert time.monotonic() < deadline, started
            time.sleep(0.005)

    monkeypatch.setattr(service, "_send_one", send_one)
    pool = service._CallPool(SimpleNamespace(kind="sandbox"), 1, service.MailReport())
    now = timezone.now()
    try:
        pool.send(uuid.uuid4(), [row(1), row(2)], {1: 1, 2: 2}, now)
        pool.send(uuid.uuid4(), [row(3), row(4)], {3: 3, 4: 4}, now)
        waiter = threading.Thread(target=pool.wait_started)
        waiter.start()
        for pk in (1, 2):
            release[pk].set()
            until_started(pk + 1)
        waiter.join(0.2)
        assert waiter.is_alive(), "returned while the second batch's last call waited for a thread"
        release[3].set()
        until_started(4)
        waiter.join(10)
        assert not waiter.is_alive()
        assert started == [1, 2, 3, 4]
    finally:
        for event in release.values():
            event.set()
        pool.close()
