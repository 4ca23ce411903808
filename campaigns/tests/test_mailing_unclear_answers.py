"""Printer answers that say less than they seem to.  One that does not say
what it did is never read as "nothing at the printer" (that Error lets a
retry mint a new key and print the card a second time); a Retry-After counts
from the answer, not from the batch's claim."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any, ClassVar

import pytest
from django.utils import timezone

from campaigns.mailing.retry import recipients_retry_sending
from campaigns.mailing.service import campaign_mail
from campaigns.models import CampaignRecipient
from campaigns.tests.test_mailing_stage import ACTOR, ready_campaign
from printers import conftest as printer_fixtures
from printers.intelliprint.simulator import IntelliPrintHandler
from printers.sandbox.simulator import SandboxHandler
from printers.simulator import Simulator

pytestmark = pytest.mark.django_db
simulator = printer_fixtures.simulator
S = CampaignRecipient.Status


class ConfirmAnswersWithoutId(IntelliPrintHandler):
    """Confirms the job (it will print) but answers the confirm without the
    job's id, as a proxy or an API change might."""

    def update(self, piece, body):
        status, headers, answer = super().update(piece, body)
        if status == 200:
            return status, {"Content-Type": "application/json"}, b'{"object": "print", "confirmed": true}'
        return status, headers, answer


@pytest.fixture
def odd_confirm(simulator, settings):
    sim = Simulator(handlers={"intelliprint": ConfirmAnswersWithoutId}).start()
    settings.PRINTERS_CONF["intelliprint"]["base_url"] = sim.url("intelliprint")
    settings.PRINTERS_CONF["intelliprint"]["settle_s"] = 0.05
    try:
        yield sim
    finally:
        sim.stop()


def test_a_confirmed_intelliprint_job_answered_without_its_id_is_found_not_printed_again(odd_confirm):
    campaign, (r,) = ready_campaign(1, printer="intelliprint")
    campaign_mail(campaign=campaign, actor=ACTOR)
    assert odd_confirm.physical_pieces("intelliprint") == 1  # confirmed: it prints
    r.refresh_from_db()
    assert r.status == S.SENDING_STAGED  # outcome unknown: same key, looked up next time
    assert "without a print id" in r.error_detail

    # The printer answers normally again.  Ops press "Retry sending" on what
    # is in Error (nothing here) and the next run goes.
    odd_confirm.handlers["intelliprint"].__class__ = IntelliPrintHandler
    recipients_retry_sending(queryset=CampaignRecipient.objects.filter(pk=r.pk), actor=ACTOR)
    CampaignRecipient.objects.filter(pk=r.pk).update(lease_until=timezone.now() - timedelta(seconds=1))
    campaign_mail(campaign=campaign, actor=ACTOR)
    r.refresh_from_db()
    assert r.status == S.SENT
    assert odd_confirm.physical_pieces("intelliprint") == 1


# ---------------------------------------------------------------- Retry-After counts from the answer
class SlowRateLimitedSandbox(SandboxHandler):
    """Answers a create after ``delay`` seconds with 429 and Retry-After: 120
    (a call that waited for its thread and its permit, then for the printer),
    and remembers when it answered."""

    delay = 1.0
    retry_after = 120
    answered_at: ClassVar[list[Any]] = []

    def handle(self, method, path, query, headers, body):
        if method == "POST":
            time.sleep(self.delay)
            type(self).answered_at.append(timezone.now())
            headers = {"Content-Type": "application/json", "Retry-After": str(self.retry_after)}
            return 429, headers, self.error_body(429, "Rate limit exceeded.", "rate_limited")
        return super().handle(method, path, query, headers, body)


@pytest.fixture
def slow_429(simulator, settings):
    SlowRateLimitedSandbox.answered_at = []
    sim = Simulator(handlers={"sandbox": SlowRateLimitedSandbox}).start()
    settings.PRINTERS_CONF["sandbox"]["base_url"] = sim.url("sandbox")
    settings.PRINTER_TIMEOUT_S = 5.0
    try:
        yield sim
    finally:
        sim.stop()


def test_retry_after_is_counted_from_the_printers_answer_not_from_the_claim(slow_429):
    campaign, (r,) = ready_campaign(1)
    report = campaign_mail(campaign=campaign, actor=ACTOR)
    assert report.moved["retry_later"] == 1
    (answered,) = SlowRateLimitedSandbox.answered_at
    r.refresh_from_db()
    assert r.status == S.SENDING_STAGED
    # "Not before 120 s from now", said when the printer answered.
    assert r.lease_until >= answered + timedelta(seconds=SlowRateLimitedSandbox.retry_after)
