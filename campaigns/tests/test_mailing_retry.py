"""Ops retry for the mailing stage: back to SendingStaged keeping the proof and
code; a new key only when the old key's piece cannot exist."""

from __future__ import annotations

import pytest
from django.utils import timezone

from campaigns.mailing.retry import recipients_retry_sending
from campaigns.models import CampaignRecipient, ErrorMessages
from campaigns.tests.test_mailing_stage import ACTOR, key_of, mail, ready_campaign, statuses
from mailpieces.models import Mailpiece
from mailpieces.status import MailpieceStatus
from printers import conftest as printer_fixtures

pytestmark = pytest.mark.django_db
simulator = printer_fixtures.simulator
S = CampaignRecipient.Status


def test_a_refused_address_fixed_by_ops_is_mailed_once_under_a_new_key(simulator):
    campaign, (r,) = ready_campaign(1)
    CampaignRecipient.objects.filter(pk=r.pk).update(address1="1 Reject Road")
    mail(campaign)
    r.refresh_from_db()
    assert (r.status, r.error_message) == (S.ERROR, ErrorMessages.FAILED_TO_MAKE_MAIL_PIECE)
    old_key = r.idempotency_key
    assert simulator.physical_pieces("sandbox") == 0  # the refusal created nothing

    CampaignRecipient.objects.filter(pk=r.pk).update(address1="12 Accepted Avenue")  # ops fix the data
    report = recipients_retry_sending(queryset=campaign.recipients.all(), actor=ACTOR)
    assert (report.retried, report.new_keys) == (1, 1)
    r.refresh_from_db()
    assert (r.status, r.submission_gen, r.idempotency_key, r.first_attempt_at) == (S.SENDING_STAGED, 1, "", None)
    assert "submission" not in r.json
    assert r.proof_url  # kept

    mail(campaign)
    r.refresh_from_db()
    assert r.status == S.SENT
    assert r.idempotency_key == key_of(r) != old_key
    assert r.json["submission"]["to"]["address1"] == "12 Accepted Avenue"  # built again from the fixed data
    assert simulator.physical_pieces("sandbox") == 1
    # The refusal's record stays beside the piece that was made.
    assert set(Mailpiece.objects.filter(recipient=r).values_list("status", flat=True)) == {
        MailpieceStatus.ERROR,
        MailpieceStatus.SUBMITTED,
    }


def test_a_row_never_sent_keeps_its_key(simulator):
    campaign, (r,) = ready_campaign(1, subscription_active=False)
    mail(campaign)
    r.refresh_from_db()
    assert (r.status, r.error_message, r.first_attempt_at) == (S.ERROR, ErrorMessages.BILLING_NOT_READY, None)
    type(campaign.organization).objects.filter(pk=campaign.organization_id).update(subscription_active=True)
    report = recipients_retry_sending(queryset=campaign.recipients.all(), actor=ACTOR)
    assert (report.retried, report.new_keys) == (1, 0)
    mail(campaign)
    r.refresh_from_db()
    assert (r.status, r.submission_gen) == (S.SENT, 0)
    assert simulator.physical_pieces("sandbox", key_of(r)) == 1


def test_only_mailing_errors_are_retried_and_twice_is_safe(simulator):
    campaign, (a, b, c) = ready_campaign(3)
    CampaignRecipient.objects.filter(pk=a.pk).update(
        status=S.ERROR, error_message=ErrorMessages.FAILED_SUBMISSION_TO_PRINTER
    )
    CampaignRecipient.objects.filter(pk=b.pk).update(status=S.ERROR, error_message=ErrorMessages.FAILED_TO_MAKE_PROOF)
    CampaignRecipient.objects.filter(pk=c.pk).update(status=S.SENT)
    report = recipients_retry_sending(queryset=campaign.recipients.all(), actor=ACTOR)
    assert report.summary() == "1 sent back to mailing; 2 not eligible: 1 not a mailing error, 1 already Sent"
    again = recipients_retry_sending(queryset=campaign.recipients.all(), actor=ACTOR)
    assert again.retried == 0
    assert statuses(campaign) == {S.SENDING_STAGED: 1, S.ERROR: 1, S.SENT: 1}


def test_every_row_that_is_not_in_error_is_counted_by_its_status(simulator):
    campaign, (a, b, c, d) = ready_campaign(4)
    CampaignRecipient.objects.filter(pk__in=[a.pk, b.pk]).update(status=S.SENT)
    CampaignRecipient.objects.filter(pk=c.pk).update(status=S.SCHEDULED)
    CampaignRecipient.objects.filter(pk=d.pk).update(
        status=S.ERROR, error_message=ErrorMessages.FAILED_SUBMISSION_TO_PRINTER
    )
    report = recipients_retry_sending(queryset=campaign.recipients.all(), actor=ACTOR)
    assert report.summary() == "1 sent back to mailing; 3 not eligible: 2 already Sent, 1 already Scheduled"


def test_a_retry_rings_the_pipeline_of_each_campaign_it_sent_rows_back_in(
    simulator, monkeypatch, django_capture_on_commit_callbacks
):
    """Once the retry commits, each campaign with a row sent back has its
    doorbell rung (by id), and a campaign with nothing sent back is left alone."""
    from campaigns.pipeline import doorbell

    rung: list[object] = []
    monkeypatch.setattr(doorbell, "enqueue", rung.append)
    first, (a,) = ready_campaign(1)
    second, (b, c) = ready_campaign(2)
    _untouched, (d,) = ready_campaign(1)
    for r in (a, b, c):
        CampaignRecipient.objects.filter(pk=r.pk).update(
            status=S.ERROR, error_message=ErrorMessages.FAILED_SUBMISSION_TO_PRINTER
        )
    CampaignRecipient.objects.filter(pk=d.pk).update(status=S.SENT)
    with django_capture_on_commit_callbacks(execute=True):
        report = recipients_retry_sending(queryset=CampaignRecipient.objects.all(), actor=ACTOR)
        assert rung == []  # not before the commit
    assert report.retried == 3
    assert sorted(rung) == [first.pk, second.pk]  # once each, by id; not the campaign with nothing sent back


def test_a_row_another_worker_moved_meanwhile_is_counted_and_keeps_its_key(simulator, monkeypatch):
    """Between reading which rows may go back and moving them, another worker
    moves one out of Error: it is reported as changed, not moved, and its key
    and saved request are not touched."""
    from campaigns.mailing import retry

    campaign, (a, b) = ready_campaign(2)
    CampaignRecipient.objects.filter(pk__in=[a.pk, b.pk]).update(
        status=S.ERROR,
        error_message=ErrorMessages.FAILED_SUBMISSION_TO_PRINTER,
        first_attempt_at=timezone.now(),
        idempotency_key="sandbox-key-of-the-first-piece",
    )
    real = retry.recipients_bulk_transition

    def meanwhile(**kwargs):
        CampaignRecipient.objects.filter(pk=b.pk).update(status=S.SENT)  # the other worker
        return real(**kwargs)

    monkeypatch.setattr(retry, "recipients_bulk_transition", meanwhile)
    report = recipients_retry_sending(queryset=campaign.recipients.all(), actor=ACTOR)
    assert (report.retried, report.new_keys) == (1, 1)
    assert report.summary() == "1 sent back to mailing; 1 not eligible: 1 changed meanwhile"
    b.refresh_from_db()
    assert (b.status, b.submission_gen, b.idempotency_key) == (S.SENT, 0, "sandbox-key-of-the-first-piece")
