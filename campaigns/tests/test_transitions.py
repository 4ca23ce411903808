from __future__ import annotations

import datetime as dt
import uuid

import django_fsm as fsm
import pytest

from campaigns.models import CampaignRecipient, RecipientTransition
from campaigns.services import recipient_transition, recipients_bulk_transition, recipients_record_created
from campaigns.tests.factories import CampaignRecipientFactory
from common.fsm import Actor, sources_of, target_of

pytestmark = pytest.mark.django_db
S = CampaignRecipient.Status


def test_a_transition_saves_and_writes_one_history_row(admin_user):
    r = CampaignRecipientFactory()
    recipient_transition(recipient=r, method="stage_proofing", actor=Actor("admin", admin_user), reason="go")
    r.refresh_from_db()
    assert r.status == S.PROOFING_STAGED
    log = RecipientTransition.objects.get(recipient=r)
    assert (log.from_status, log.to_status, log.source, log.acting_user, log.reason) == (
        "Pending",
        "ProofingStaged",
        "admin",
        admin_user,
        "go",
    )


def test_a_disallowed_transition_raises_and_writes_nothing():
    r = CampaignRecipientFactory()
    with pytest.raises(fsm.TransitionNotAllowed):
        recipient_transition(recipient=r, method="mark_sent", actor=Actor("task"))
    r.refresh_from_db()
    assert r.status == S.PENDING
    assert RecipientTransition.objects.count() == 0


def test_a_stale_object_cannot_overwrite_a_newer_status():
    r = CampaignRecipientFactory()
    stale = CampaignRecipient.objects.get(pk=r.pk)
    recipient_transition(recipient=r, method="hold_out", actor=Actor("task"))
    with pytest.raises(fsm.ConcurrentTransition):
        recipient_transition(recipient=stale, method="stage_proofing", actor=Actor("admin"))
    r.refresh_from_db()
    assert r.status == S.HOLDOUT
    assert RecipientTransition.objects.filter(recipient=r).count() == 1


def test_status_cannot_be_assigned_directly():
    r = CampaignRecipientFactory()
    with pytest.raises(AttributeError):
        r.status = S.SENT


def test_skip_records_the_reason():
    r = CampaignRecipientFactory()
    recipient_transition(
        recipient=r,
        method="skip",
        actor=Actor("task"),
        reason="no zip",
        skip_reason="NoAddress",
        details={"zip": "empty"},
    )
    r.refresh_from_db()
    assert (r.status, r.skip_reason, r.json["skip_details"]) == (S.SKIPPED, "NoAddress", {"zip": "empty"})


def test_skip_rejects_a_reason_outside_the_spec():
    r = CampaignRecipientFactory()
    with pytest.raises(ValueError, match="Bogus"):
        recipient_transition(recipient=r, method="skip", actor=Actor("task"), skip_reason="Bogus")


def test_fail_records_the_error_message_and_retry_clears_it():
    r = CampaignRecipientFactory(status=S.PROOFING)
    recipient_transition(recipient=r, method="fail", actor=Actor("task"), message=r.ErrorMessages.FAILED_TO_MAKE_PROOF)
    assert r.error_message == "Failed to make proof for this recipient"
    recipient_transition(recipient=r, method="retry_proofing", actor=Actor("admin"))
    r.refresh_from_db()
    assert (r.status, r.error_message) == (S.PROOFING_STAGED, "")


def test_retry_sending_needs_a_proof_and_a_mailing_error():
    printer = "Failed submission to Printer"
    r = CampaignRecipientFactory(status=S.ERROR, proof_url="", error_message=printer)
    with pytest.raises(fsm.TransitionNotAllowed):
        recipient_transition(recipient=r, method="retry_sending", actor=Actor("admin"))
    proofing = CampaignRecipientFactory(
        status=S.ERROR,
        proof_url="https://proofs.example/1.png",
        error_message="Failed to make proof for this recipient",
    )
    with pytest.raises(fsm.TransitionNotAllowed):
        recipient_transition(recipient=proofing, method="retry_sending", actor=Actor("admin"))
    r2 = CampaignRecipientFactory(status=S.ERROR, proof_url="https://proofs.example/1.png", error_message=printer)
    recipient_transition(recipient=r2, method="retry_sending", actor=Actor("admin"))
    assert r2.status == S.SENDING_STAGED


def test_history_rows_are_append_only():
    r = CampaignRecipientFactory()
    recipient_transition(recipient=r, method="hold_out", actor=Actor("task"))
    log = RecipientTransition.objects.get()
    log.reason = "rewritten"
    with pytest.raises(ValueError, match="append-only"):
        log.save()


def test_bulk_moves_only_eligible_rows_and_logs_each(admin_user):
    errors = CampaignRecipientFactory.create_batch(3, status=S.ERROR, error_message="x")
    skipped = CampaignRecipientFactory(status=S.SKIPPED)
    sent = CampaignRecipientFactory(status=S.SENT)
    qs = CampaignRecipient.objects.all()
    moved = recipients_bulk_transition(queryset=qs, method="retry_proofing", actor=Actor("admin", admin_user))
    assert sorted(moved) == sorted(r.pk for r in errors)
    assert set(CampaignRecipient.objects.filter(pk__in=moved).values_list("status", flat=True)) == {S.PROOFING_STAGED}
    assert CampaignRecipient.objects.get(pk=skipped.pk).status == S.SKIPPED
    assert CampaignRecipient.objects.get(pk=sent.pk).status == S.SENT
    logs = RecipientTransition.objects.filter(recipient_id__in=moved)
    assert logs.count() == 3
    assert {(entry.from_status, entry.to_status, entry.acting_user_id) for entry in logs} == {
        ("Error", "ProofingStaged", admin_user.pk)
    }


def test_bulk_twice_is_a_no_op_the_second_time():
    CampaignRecipientFactory.create_batch(2, status=S.ERROR)
    qs = CampaignRecipient.objects.all()
    assert len(recipients_bulk_transition(queryset=qs, method="retry_proofing", actor=Actor("admin"))) == 2
    assert recipients_bulk_transition(queryset=qs, method="retry_proofing", actor=Actor("admin")) == []
    assert RecipientTransition.objects.count() == 2


def test_bulk_takes_each_source_state_of_a_multi_source_method():
    a = CampaignRecipientFactory(status=S.SKIPPED)
    b = CampaignRecipientFactory(status=S.HOLDOUT)
    moved = recipients_bulk_transition(queryset=CampaignRecipient.objects.all(), method="archive", actor=Actor("a"))
    assert sorted(moved) == sorted([a.pk, b.pk])
    assert {(t.from_status, t.to_status) for t in RecipientTransition.objects.all()} == {
        ("Skipped", "Archived"),
        ("Holdout", "Archived"),
    }


def test_bulk_sources_come_from_the_fsm_table():
    assert sources_of(CampaignRecipient, "archive") == sorted(
        ["Pending", "Skipped", "Holdout", "Error", "Blacklisted", "AddressEnrichable", "Proofed", "Scheduled"]
    )
    assert target_of(CampaignRecipient, "archive") == "Archived"


def test_created_rows_get_a_creation_history_row():
    r = CampaignRecipientFactory(status=S.SKIPPED, skip_reason="NoAddress")
    recipients_record_created(recipients=[r], actor=Actor("command:import_recipients"))
    log = RecipientTransition.objects.get()
    assert (log.from_status, log.to_status, log.payload) == ("", "Skipped", {"skip_reason": "NoAddress"})


def test_a_blocklist_entry_derives_its_key_and_refuses_a_variant_duplicate():
    from django.db import IntegrityError, transaction

    from campaigns.tests.factories import BlocklistEntryFactory

    entry = BlocklistEntryFactory(address1="12 Oak Street", zip="62701-1234", country="US")
    assert entry.key
    with pytest.raises(IntegrityError), transaction.atomic():
        BlocklistEntryFactory(organization=entry.organization, address1="12 oak st.", zip="62701", country="USA")


PROBLEM_JSON = {
    "extra": {"tier": "gold"},
    "source_row": {"city": "x" * 300},
    "validation_errors": [{"field": "zip", "message": "zip is empty"}],
    "approval_errors": [{"loc": ["zip"], "msg": "bad zip", "type": "lob_zip"}],
    "skip_details": {"zip": "empty"},
    "altered_fields": ["city"],
    "enrichment": {"backend": "local", "outcome": "matched", "error": "HTTP 503"},
}
# What clearing the problem leaves: the data received and where the address
# came from, never a trace of the problem.
CLEARED_JSON = {
    "extra": {"tier": "gold"},
    "source_row": {"city": "x" * 300},
    "enrichment": {"backend": "local", "outcome": "matched"},
}


@pytest.mark.parametrize(
    ("method", "source"),
    [
        ("retry_proofing", S.ERROR),
        ("retry_sending", S.ERROR),
        ("revalidate", S.SKIPPED),
        ("revalidate", S.BLACKLISTED),
        ("stage_proofing", S.PENDING),
    ],
)
def test_a_bulk_move_ends_like_a_move_one_by_one(method, source):
    problem = {
        # Each retry is offered for its own stage's errors only.
        "error_message": "Failed submission to Printer"
        if method == "retry_sending"
        else "Failed to make proof for this recipient",
        "skip_reason": "NoAddress",
        "proof_url": "https://proofs.example/1.png",
        "json": PROBLEM_JSON,
    }
    one = CampaignRecipientFactory(status=source, **problem)
    many = CampaignRecipientFactory(status=source, **problem)
    recipient_transition(recipient=one, method=method, actor=Actor("admin"))
    recipients_bulk_transition(queryset=CampaignRecipient.objects.filter(pk=many.pk), method=method, actor=Actor("a"))
    one.refresh_from_db()
    many.refresh_from_db()
    fields = ("status", "error_message", "skip_reason", "lease_until", "claim_token", "json")
    assert [getattr(many, f) for f in fields] == [getattr(one, f) for f in fields]
    assert (many.error_message, many.skip_reason, many.json) == ("", "", CLEARED_JSON)


@pytest.mark.parametrize(
    "touched",
    [
        {"claim_token": uuid.uuid4(), "lease_until": dt.datetime(2030, 1, 1, tzinfo=dt.UTC)},  # a worker holds it
        {"first_attempt_at": dt.datetime(2026, 1, 1, tzinfo=dt.UTC)},  # an attempt was made
    ],
    ids=["held", "attempted"],
)
def test_archiving_a_scheduled_card_the_printer_may_have_is_refused_one_by_one_and_in_bulk(touched):
    # The printer may hold the piece: archiving would hide a card that still goes out.
    one = CampaignRecipientFactory(status=S.SCHEDULED, **touched)
    with pytest.raises(fsm.TransitionNotAllowed):
        recipient_transition(recipient=one, method="archive", actor=Actor("admin"))
    moved = recipients_bulk_transition(
        queryset=CampaignRecipient.objects.filter(pk=one.pk), method="archive", actor=Actor("admin")
    )
    one.refresh_from_db()
    assert (moved, one.status) == ([], S.SCHEDULED)


def test_a_scheduled_card_nothing_has_touched_is_archived_one_by_one_and_in_bulk():
    # Scheduled cards are ours until their day (docs/mailing.md): nothing at the printer to cancel.
    one, many = CampaignRecipientFactory.create_batch(2, status=S.SCHEDULED)
    recipient_transition(recipient=one, method="archive", actor=Actor("admin"))
    moved = recipients_bulk_transition(
        queryset=CampaignRecipient.objects.filter(pk=many.pk), method="archive", actor=Actor("admin")
    )
    one.refresh_from_db()
    assert (moved, one.status) == ([many.pk], S.ARCHIVED)


def test_the_bulk_guard_is_checked_in_the_statement_that_moves_the_row(monkeypatch):
    """A worker claims the Scheduled row after the caller chose it: the move,
    not an earlier read, checks the guard, so the claimed card stays."""
    from common import fsm as common_fsm

    row = CampaignRecipientFactory(status=S.SCHEDULED)
    real = common_fsm.transition_guard

    def claimed_meanwhile(model, method, source):
        CampaignRecipient.objects.filter(pk=row.pk).update(claim_token=uuid.uuid4())  # the worker
        return real(model, method, source)

    monkeypatch.setattr(common_fsm, "transition_guard", claimed_meanwhile)
    moved = recipients_bulk_transition(
        queryset=CampaignRecipient.objects.filter(pk=row.pk), method="archive", actor=Actor("admin")
    )
    row.refresh_from_db()
    assert (moved, row.status) == ([], S.SCHEDULED)
