"""The mailing stage's claim, prepare and record (``campaigns/mailing/service.py``),
in the cases ``make mutation`` showed nothing held: a retry that sends the saved
bytes after ops edited the row, a batch whose first row's claim was lost, the
backoff a batch waits, scheduled rows filling only the batch's room, the
reference of a refusal's record, and billing that stops a campaign without
writing on rows already mailed."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from campaigns.claims import CLAIM_REASONS
from campaigns.mailing import service
from campaigns.mailing.service import UNKNOWN_OUTCOME
from campaigns.models import CampaignRecipient, ErrorMessages, RecipientTransition
from campaigns.tests.test_mailing_stage import due_now, mail, ready_campaign
from mailpieces.models import Mailpiece, MailpieceTransition
from mailpieces.status import MailpieceStatus
from printers import conftest as printer_fixtures
from printers.base import PrinterError
from printers.registry import get_printer
from printers.simulator import Fault

pytestmark = pytest.mark.django_db
simulator = printer_fixtures.simulator
S = CampaignRecipient.Status


def posts(sim) -> list[bytes]:
    return [r.body for r in sim.captured("sandbox", "POST")]


def test_a_retry_sends_the_saved_request_even_after_ops_edited_the_row(simulator):
    """The printer must see the same bytes under the same key (Stannp refuses a
    replayed key with another body): the request saved before the first
    attempt is sent again as it was, not built again from the row, and byte
    for byte (PostgreSQL's jsonb hands the saved metadata back reordered)."""
    campaign, (r,) = ready_campaign(1)
    simulator.inject("sandbox", Fault.status(503, method="POST"))  # refused before creating: outcome known, retried
    mail(campaign)
    r.refresh_from_db()
    assert r.status == S.SENDING_STAGED
    saved = r.json["submission"]
    CampaignRecipient.objects.filter(pk=r.pk).update(address1="99 Edited Road")
    due_now(campaign)
    mail(campaign)
    r.refresh_from_db()
    assert r.status == S.SENT
    first, second = posts(simulator)
    assert second == first
    assert r.json["submission"] == saved
    assert r.json["submission"]["to"]["address1"] != "99 Edited Road"


def test_a_row_whose_claim_was_lost_is_skipped_and_the_rest_of_the_batch_recorded(simulator, monkeypatch):
    """Another worker took the first row (its lease ran out) while the calls
    ran: that row is left to it, counted, and the others are still recorded."""
    campaign, (a, b, c) = ready_campaign(3)
    real = service._record

    def record(campaign, rows, outcomes, token, actor, now, *rest):
        CampaignRecipient.objects.filter(pk=a.pk).update(claim_token=uuid.uuid4())
        return real(campaign, rows, outcomes, token, actor, now, *rest)

    monkeypatch.setattr(service, "_record", record)
    report = mail(campaign, concurrency=1)  # one thread: the outcomes come in row order, the lost row first
    assert report.moved["lost_claim"] == 1
    assert report.moved[S.SENT] == 2
    assert dict(campaign.recipients.values_list("pk", "status")) == {a.pk: S.SENDING, b.pk: S.SENT, c.pk: S.SENT}
    assert set(Mailpiece.objects.values_list("recipient_id", flat=True)) == {b.pk, c.pk}


def test_a_batch_waits_for_its_longest_backoff_which_doubles_with_each_attempt(simulator):
    """Two rows fail for now: one on its third attempt (30 s x 2 x 2), one on its
    first (30 s); both wait until the longer backoff is over."""
    campaign, (a, b) = ready_campaign(2)
    CampaignRecipient.objects.filter(pk=a.pk).update(attempt=2)
    simulator.inject("sandbox", Fault.status(503, times=2, method="POST"))
    now = timezone.now()
    report = mail(campaign, now=now, concurrency=1)
    assert report.moved["retry_later"] == 2
    leases = dict(campaign.recipients.values_list("pk", "lease_until"))
    assert leases == {a.pk: now + timedelta(seconds=120), b.pk: now + timedelta(seconds=120)}
    assert dict(campaign.recipients.values_list("pk", "attempt")) == {a.pk: 3, b.pk: 1}


def test_due_scheduled_rows_fill_only_the_room_the_staged_rows_leave(simulator):
    campaign, rows = ready_campaign(4)
    campaign.mail_date = timezone.localdate()
    campaign.save(update_fields=["mail_date"])
    staged, *scheduled = rows
    CampaignRecipient.objects.filter(pk__in=[r.pk for r in scheduled]).update(status=S.SCHEDULED)
    report = mail(campaign, batch_size=2)
    assert report.claimed == 2
    assert dict(campaign.recipients.values_list("pk", "status")) == {
        staged.pk: S.SENT,
        scheduled[0].pk: S.SENT,
        scheduled[1].pk: S.SCHEDULED,
        scheduled[2].pk: S.SCHEDULED,
    }


def test_a_refusals_record_carries_the_reference_the_printer_was_given(simulator):
    """A row whose request was saved under another reference (an older key
    format, in flight across an upgrade) keeps it on its Error record, where
    ops look it up at the printer."""
    campaign, (r,) = ready_campaign(1)
    CampaignRecipient.objects.filter(pk=r.pk).update(address1="1 Reject Road")
    mail(campaign)  # saves the request, and the printer refuses it
    r.refresh_from_db()
    assert r.status == S.ERROR
    assert Mailpiece.objects.get(recipient=r).reference == r.idempotency_key

    legacy = {**r.json["submission"], "reference": "legacy-ref-00000001"}
    Mailpiece.objects.all().delete()
    CampaignRecipient.objects.filter(pk=r.pk).update(
        status=S.SENDING_STAGED, error_message="", json={**r.json, "submission": legacy}
    )
    mail(campaign)
    piece = Mailpiece.objects.get(recipient=r)
    assert (piece.status, piece.reference) == (MailpieceStatus.ERROR, "legacy-ref-00000001")


def test_billing_not_ready_leaves_rows_already_mailed_alone(simulator):
    """The rows waiting are failed or told why they wait; a row already Sent
    keeps its record as it was."""
    campaign, (waiting, sent_before, sent) = ready_campaign(3, subscription_active=False)
    earlier = timezone.now() - timedelta(hours=1)
    CampaignRecipient.objects.filter(pk=waiting.pk).update(status=S.SENDING_STAGED)
    CampaignRecipient.objects.filter(pk=sent_before.pk).update(status=S.SENDING_STAGED, first_attempt_at=earlier)
    CampaignRecipient.objects.filter(pk=sent.pk).update(status=S.SENT, first_attempt_at=earlier)
    report = mail(campaign)
    assert report.moved[ErrorMessages.BILLING_NOT_READY] == 1
    rows = {
        pk: (status, detail) for pk, status, detail in campaign.recipients.values_list("pk", "status", "error_detail")
    }
    assert rows[waiting.pk][0] == S.ERROR
    assert rows[sent_before.pk] == (
        S.SENDING_STAGED,
        "waiting: billing is not ready (no active subscription)",
    )
    assert rows[sent.pk] == (S.SENT, "")
    assert simulator.captured("sandbox") == []


def test_a_proof_of_an_older_design_is_not_mailed(simulator):
    """The approval covers the current design: a row proofed from an earlier
    one waits for a new proof instead of going to the printer."""
    campaign, (current, older) = ready_campaign(2)
    CampaignRecipient.objects.filter(pk=older.pk).update(proof_version="an-earlier-design")
    mail(campaign)
    assert dict(campaign.recipients.values_list("pk", "status")) == {current.pk: S.SENT, older.pk: S.PROOFED}
    assert len(posts(simulator)) == 1


def test_a_printer_modules_own_bug_leaves_the_outcome_unknown_never_an_error(simulator, monkeypatch):
    """An exception the call's handling did not expect may come after the
    printer created the piece: the row waits to be looked up under the same
    key (never Error, which ops could retry under a new one)."""
    campaign, (r,) = ready_campaign(1)

    def broken(self, request):
        raise RuntimeError("the printer module's own bug")

    monkeypatch.setattr(type(get_printer("sandbox")), "submit", broken)
    report = mail(campaign)
    assert report.moved["retry_later"] == 1
    r.refresh_from_db()
    assert (r.status, r.error_message, r.error_detail) == (S.SENDING_STAGED, "", "unexpected error: RuntimeError")


def test_the_history_says_what_the_printer_did_with_each_row(simulator, monkeypatch):
    campaign, (taken, refused, unknown) = ready_campaign(3)
    CampaignRecipient.objects.filter(pk=refused.pk).update(address1="1 Reject Road")
    CampaignRecipient.objects.filter(pk=unknown.pk).update(address1="503 Busy Lane")
    printer_class = type(get_printer("sandbox"))
    real = printer_class.submit

    def submit(self, request):
        if request.to.address1 == "503 Busy Lane":
            raise PrinterError("the printer is busy", status_code=503)
        return real(self, request)

    monkeypatch.setattr(printer_class, "submit", submit)
    now = timezone.now()
    mail(campaign, now=now)
    moves = {
        (t.recipient_id, t.from_status, t.to_status): t.reason
        for t in RecipientTransition.objects.filter(recipient__campaign=campaign)
    }
    assert moves == {
        **{(pk, S.PROOFED, S.SENDING_STAGED): "to the printer" for pk in (taken.pk, refused.pk, unknown.pk)},
        **{
            (pk, S.SENDING_STAGED, S.SENDING): CLAIM_REASONS["start_sending"]
            for pk in (taken.pk, refused.pk, unknown.pk)
        },
        (taken.pk, S.SENDING, S.SENT): "the printer has the piece",
        (refused.pk, S.SENDING, S.ERROR): ErrorMessages.FAILED_TO_MAKE_MAIL_PIECE,
        (
            unknown.pk,
            S.SENDING,
            S.SENDING_STAGED,
        ): UNKNOWN_OUTCOME,
    }
    pieces = {
        (t.mailpiece.recipient_id, t.from_status, t.to_status, t.reason, t.created)
        for t in MailpieceTransition.objects.select_related("mailpiece")
    }
    assert pieces == {
        (taken.pk, "", MailpieceStatus.SUBMITTED, "submitted to the printer", now),
        (refused.pk, "", MailpieceStatus.ERROR, "the printer refused it", now),
    }


def test_a_card_sent_after_an_unclear_answer_no_longer_shows_that_failure(simulator):
    """The first attempt timed out; the next one finds the card: the Sent
    row's page must not still read "looking the piece up failed" or a 503."""
    campaign, (r,) = ready_campaign(1)
    simulator.inject("sandbox", Fault.status(503, method="POST"))
    mail(campaign)
    r.refresh_from_db()
    assert r.status == S.SENDING_STAGED
    assert r.error_detail  # why it waits, meanwhile
    due_now(campaign)
    mail(campaign)
    r.refresh_from_db()
    assert (r.status, r.error_detail) == (S.SENT, "")
