"""The mailing stage against the printer simulator: every fault the issue
names, and each time the one property that matters: the simulator holds
exactly one physical piece per Sent recipient, and none for an org that
cannot pay.  The simulator is a real HTTP server, so the printer clients,
their keys and their lookups are the production ones."""

from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from campaigns.claims import recipients_claim
from campaigns.mailing import service
from campaigns.mailing.service import MAX_ATTEMPTS, campaign_mail
from campaigns.models import CampaignRecipient, ErrorMessages, ProofApproval, RecipientTransition
from campaigns.pipeline import doorbell
from campaigns.pipeline.sweeper import pipeline_sweep
from campaigns.proofing.design import campaign_design
from campaigns.tasks import campaign_run_task, pipeline_tick_task
from campaigns.tests.factories import CampaignFactory, CampaignRecipientFactory, OrganizationFactory
from common.fsm import Actor
from common.testing import race
from mailpieces.models import Mailpiece
from mailpieces.status import MailpieceStatus
from printers import conftest as printer_fixtures
from printers.keys import submission_key
from printers.sandbox.simulator import SandboxHandler
from printers.simulator import Fault, Simulator
from printers.stannp.simulator import StannpHandler

pytestmark = pytest.mark.django_db
# The live simulator of printers/conftest.py: every printer's base URL points at it.
simulator = printer_fixtures.simulator
S = CampaignRecipient.Status
ACTOR = Actor("test")
# Where each printer's create call goes (the simulator's captured path).
CREATE_PATHS = {
    "sandbox": "/v1/pieces",
    "lob": "/v1/postcards",
    "stannp": "/v1/postcards/create",
    "intelliprint": "/v1/prints",
    "taylor": "/v1/mailpieces",
}
# An address each printer mails to.
ADDRESSES: dict[str, dict[str, str]] = {
    "intelliprint": {"city": "London", "state": "", "zip": "SW1A 1AA", "country": "GB"},
}


# ---------------------------------------------------------------- helpers
def ready_campaign(n: int = 3, *, printer: str = "sandbox", status: str = S.PROOFED, approved: bool = True, **org: Any):
    """A campaign whose rows have a proof of the current design, approved by a
    person: what the proofing stage leaves for the mailing stage."""
    campaign = CampaignFactory(organization=OrganizationFactory(**org), printer=printer)
    version = campaign_design(campaign).version
    rows = [
        CampaignRecipientFactory(
            campaign=campaign,
            status=status,
            proof_url=f"proofs/{campaign.pk}/{i}-front.png",
            proof_back_url=f"proofs/{campaign.pk}/{i}-back.png",
            proof_version=version,
            **ADDRESSES.get(printer, {}),
        )
        for i in range(n)
    ]
    if approved:
        ProofApproval.objects.create(campaign=campaign, design_version=version)
    return campaign, rows


def mail(campaign, **kwargs: Any):
    return campaign_mail(campaign=campaign, actor=ACTOR, **kwargs)


def statuses(campaign) -> Counter[str]:
    return Counter(campaign.recipients.values_list("status", flat=True))


def key_of(r: CampaignRecipient) -> str:
    return submission_key(org_id=r.campaign.organization_id, recipient_id=r.pk, gen=r.submission_gen)


def creates(sim: Simulator, kind: str) -> int:
    """Create calls the printer received (replays included)."""
    return sum(1 for c in sim.captured(kind, "POST") if c.path == CREATE_PATHS[kind])


def one_piece_each(sim: Simulator, campaign) -> bool:
    """Every recipient's key names exactly one physical piece at the printer."""
    kind = campaign.printer
    return all(sim.physical_pieces(kind, key_of(r)) == 1 for r in campaign.recipients.all())


def due_now(campaign) -> None:
    """The backoff of every waiting row is over (the clock moved on)."""
    campaign.recipients.update(lease_until=timezone.now() - timedelta(seconds=1))


def expired() -> Any:
    """A moment past every lease a batch takes."""
    return timezone.now() + service.LEASE + timedelta(minutes=1)


def crash_in_record_once(monkeypatch) -> list[int]:
    """The worker dies after the printer calls, before its commit: ``_record``
    raises the first time, and the real one runs afterwards."""
    real = service._record
    crashes: list[int] = []

    def dying(*args: Any, **kwargs: Any) -> Any:
        if not crashes:
            crashes.append(1)
            raise RuntimeError("worker killed before the commit")
        return real(*args, **kwargs)

    monkeypatch.setattr(service, "_record", dying)
    return crashes


# ---------------------------------------------------------------- the happy path, every printer
@pytest.mark.parametrize("kind", ["sandbox", "lob", "stannp", "intelliprint", "taylor"])
def test_every_recipient_is_mailed_once_with_its_key_and_its_saved_request(kind, simulator, settings):
    settings.PRINTERS_CONF["intelliprint"]["settle_s"] = 0.05  # its post-create reconcile, kept short
    campaign, rows = ready_campaign(3, printer=kind)
    report = mail(campaign)
    assert report.moved[S.SENT] == 3
    assert statuses(campaign) == {S.SENT: 3}
    assert simulator.physical_pieces(kind) == 3
    assert one_piece_each(simulator, campaign)
    assert creates(simulator, kind) == 3
    pieces = {p.recipient_id: p for p in Mailpiece.objects.all()}
    assert len(pieces) == 3
    at_printer = {p.id for p in simulator.pieces(kind) if p.physical}
    for r in rows:
        r.refresh_from_db()
        assert r.idempotency_key == key_of(r)
        assert r.first_attempt_at is not None
        assert (r.claim_token, r.lease_until, r.attempt) == (None, None, 0)
        saved = r.json["submission"]
        assert saved["reference"] == r.idempotency_key
        assert saved["to"]["address1"] == r.address1
        assert saved["front"].startswith("http")
        assert saved["back"].startswith("http")
        assert saved["metadata"]["recipient_id"] == str(r.pk)
        piece = pieces[r.pk]
        assert (piece.status, piece.printer, piece.reference) == (MailpieceStatus.SUBMITTED, kind, r.idempotency_key)
        assert piece.printer_id in at_printer
    assert len({p.printer_id for p in pieces.values()}) == 3
    # History: Proofed -> SendingStaged -> Sending -> Sent, once each.
    moves = Counter(
        RecipientTransition.objects.filter(recipient__campaign=campaign).values_list("from_status", "to_status")
    )
    assert moves == {(S.PROOFED, S.SENDING_STAGED): 3, (S.SENDING_STAGED, S.SENDING): 3, (S.SENDING, S.SENT): 3}


def test_rows_already_staged_are_mailed_too(simulator):
    campaign, _ = ready_campaign(2, status=S.SENDING_STAGED)
    assert mail(campaign).moved[S.SENT] == 2
    assert one_piece_each(simulator, campaign)


def test_proofs_of_an_unapproved_design_are_not_mailed(simulator):
    campaign, _ = ready_campaign(2, approved=False)
    report = mail(campaign)
    assert report.waiting_for_approval
    assert statuses(campaign) == {S.PROOFED: 2}
    assert not simulator.requests


# ---------------------------------------------------------------- crashes
def test_crash_after_the_claim_before_the_printer_call_is_recovered_by_the_sweeper(simulator):
    campaign, _ = ready_campaign(3, status=S.SENDING_STAGED)
    claim = recipients_claim(
        campaign=campaign, method="start_sending", limit=10, lease=timedelta(minutes=10), actor=ACTOR
    )
    assert len(claim) == 3  # ... and the worker dies here.
    assert mail(campaign).claimed == 0  # leased: nobody else takes them
    assert pipeline_sweep(actor=ACTOR)[S.SENDING] == 0  # not expired yet
    assert pipeline_sweep(actor=ACTOR, now=timezone.now() + timedelta(minutes=11))[S.SENDING] == 3
    assert statuses(campaign) == {S.SENDING_STAGED: 3}
    assert mail(campaign).moved[S.SENT] == 3
    assert statuses(campaign) == {S.SENT: 3}
    assert one_piece_each(simulator, campaign)
    assert creates(simulator, "sandbox") == 3


def test_crash_after_the_printer_accepted_before_our_commit_finds_the_piece(simulator, monkeypatch):
    campaign, _ = ready_campaign(3)
    crashes = crash_in_record_once(monkeypatch)
    with pytest.raises(RuntimeError, match="killed"):
        mail(campaign)
    assert crashes
    assert simulator.physical_pieces("sandbox") == 3  # printed; we recorded nothing
    assert statuses(campaign) == {S.SENDING: 3}
    assert not Mailpiece.objects.exists()
    assert mail(campaign).claimed == 0  # still leased by the dead worker
    assert pipeline_sweep(actor=ACTOR, now=expired())[S.SENDING] == 3
    report = mail(campaign)
    assert report.moved[S.SENT] == 3
    assert statuses(campaign) == {S.SENT: 3}
    assert one_piece_each(simulator, campaign)
    assert creates(simulator, "sandbox") == 3  # found by the lookup: never submitted again
    assert set(Mailpiece.objects.values_list("printer_id", flat=True)) == {p.id for p in simulator.pieces("sandbox")}


def test_a_worker_that_outlived_its_lease_records_nothing(simulator, monkeypatch):
    """While the first worker talks to the printer its lease runs out; the
    sweeper hands the rows to a second worker, which finds the pieces and
    records them.  The first worker's late commit is refused by the token."""
    campaign, _ = ready_campaign(2)
    real = service._Flight.wait
    taken_over: list[Any] = []

    def slow_calls(flight: Any) -> Any:
        outcomes = real(flight)
        if not taken_over:
            taken_over.append(1)
            pipeline_sweep(actor=ACTOR, now=expired())
            taken_over.append(mail(campaign))
        return outcomes

    monkeypatch.setattr(service._Flight, "wait", slow_calls)
    report = mail(campaign)
    assert taken_over[1].moved[S.SENT] == 2
    assert (report.moved["lost_claim"], report.moved[S.SENT]) == (2, 0)
    assert statuses(campaign) == {S.SENT: 2}
    assert Mailpiece.objects.count() == 2
    assert one_piece_each(simulator, campaign)
    sent = RecipientTransition.objects.filter(recipient__campaign=campaign, to_status=S.SENT)
    assert sent.count() == 2


# ---------------------------------------------------------------- unknown outcomes
def test_a_timeout_after_the_printer_created_the_piece_is_retried_and_finds_it(simulator):
    campaign, (r,) = ready_campaign(1)
    simulator.inject("sandbox", Fault.timeout_after_create(1.0, method="POST"))
    report = mail(campaign)
    assert report.moved["retry_later"] == 1
    r.refresh_from_db()
    assert (r.status, r.attempt, r.error_message) == (S.SENDING_STAGED, 1, "")
    assert r.lease_until > timezone.now()  # not before the backoff
    assert simulator.physical_pieces("sandbox", r.idempotency_key) == 1  # it exists; we do not know yet
    assert mail(campaign).claimed == 0
    due_now(campaign)
    assert mail(campaign).moved[S.SENT] == 1
    r.refresh_from_db()
    assert r.status == S.SENT
    assert simulator.physical_pieces("sandbox", r.idempotency_key) == 1
    assert creates(simulator, "sandbox") == 1


class RateLimitedSandbox(SandboxHandler):
    """A sandbox that answers every call 429 with a long Retry-After while
    ``storm`` is on (the simulator's own 429 asks for 1 s only)."""

    storm = False
    retry_after = 120

    def handle(self, method, path, query, headers, body):
        if self.storm:
            return (
                429,
                {"Content-Type": "application/json", "Retry-After": str(self.retry_after)},
                self.error_body(429, "Rate limit exceeded.", "rate_limited"),
            )
        return super().handle(method, path, query, headers, body)


@pytest.fixture
def stormy(simulator, settings):
    """The sandbox printer served by :class:`RateLimitedSandbox`."""
    sim = Simulator(handlers={"sandbox": RateLimitedSandbox}).start()
    settings.PRINTERS_CONF["sandbox"]["base_url"] = sim.url("sandbox")
    try:
        yield sim
    finally:
        sim.stop()


def test_a_429_storm_waits_as_long_as_the_printer_asks_and_never_errors(stormy):
    handler = stormy.handlers["sandbox"]
    handler.storm = True
    campaign, _ = ready_campaign(3)
    for attempt in range(1, MAX_ATTEMPTS):
        before = timezone.now()
        report = mail(campaign)
        assert report.moved["retry_later"] == 3
        assert statuses(campaign) == {S.SENDING_STAGED: 3}
        for r in campaign.recipients.all():
            assert r.attempt == attempt
            assert r.lease_until >= before + timedelta(seconds=handler.retry_after)
            assert "429" in r.error_detail or "rate" in r.error_detail.lower()
        assert mail(campaign).claimed == 0  # nobody calls before Retry-After
        due_now(campaign)
    assert not stormy.physical_pieces("sandbox")
    handler.storm = False
    assert mail(campaign).moved[S.SENT] == 3
    assert one_piece_each(stormy, campaign)
    assert Mailpiece.objects.filter(status=MailpieceStatus.SUBMITTED).count() == 3


def test_a_429_storm_with_a_short_retry_after_still_backs_off(simulator):
    campaign, (r,) = ready_campaign(1)
    simulator.inject("sandbox", 429)  # Retry-After: 1
    before = timezone.now()
    mail(campaign)
    r.refresh_from_db()
    assert r.status == S.SENDING_STAGED
    assert r.lease_until >= before + service.BACKOFF


# ---------------------------------------------------------------- duplicates and lost enqueues
def test_duplicate_delivery_of_the_same_task_mails_once(simulator):
    campaign, _ = ready_campaign(4)
    campaign_run_task(campaign.pk)
    campaign_run_task(campaign.pk)
    assert statuses(campaign) == {S.SENT: 4}
    assert one_piece_each(simulator, campaign)
    assert creates(simulator, "sandbox") == 4
    assert Mailpiece.objects.count() == 4


def test_a_lost_enqueue_is_recovered_by_the_tick(simulator, monkeypatch):
    campaign, _ = ready_campaign(3)
    lost: list[int] = []
    monkeypatch.setattr(doorbell, "enqueue", lost.append)  # "enqueued", never delivered
    assert doorbell.campaign_ring(campaign.pk)
    assert lost == [campaign.pk]
    assert statuses(campaign) == {S.PROOFED: 3}
    monkeypatch.undo()
    assert pipeline_tick_task() == 0  # the ring is fresh
    type(campaign).objects.filter(pk=campaign.pk).update(doorbell_rung_at=timezone.now() - timedelta(minutes=6))
    assert pipeline_tick_task() == 1
    assert statuses(campaign) == {S.SENT: 3}
    assert one_piece_each(simulator, campaign)


# ---------------------------------------------------------------- the printer's key window
KEYED = ["sandbox", "lob", "stannp", "taylor"]  # IntelliPrint has no keys: its reconcile is tested in printers/


@pytest.mark.parametrize("kind", KEYED)
def test_past_the_key_window_a_piece_that_exists_is_found_not_made_again(simulator, monkeypatch, kind):
    campaign, (r,) = ready_campaign(1, printer=kind)
    crash_in_record_once(monkeypatch)
    with pytest.raises(RuntimeError):
        mail(campaign)
    simulator.advance(25 * 3600)  # the printer forgot the key
    pipeline_sweep(actor=ACTOR, now=expired())
    assert mail(campaign).moved[S.SENT] == 1
    r.refresh_from_db()
    assert r.status == S.SENT
    assert simulator.physical_pieces(kind) == 1
    assert creates(simulator, kind) == 1
    assert Mailpiece.objects.get(recipient=r).printer_id == simulator.pieces(kind)[0].id


@pytest.mark.parametrize("kind", KEYED)
def test_past_the_key_window_a_piece_that_never_existed_is_made_once(simulator, kind):
    campaign, (r,) = ready_campaign(1, printer=kind)
    simulator.inject(kind, Fault.status(503, method="POST"))  # refused before creating
    assert mail(campaign).moved["retry_later"] == 1
    assert not simulator.physical_pieces(kind)
    simulator.advance(25 * 3600)
    due_now(campaign)
    assert mail(campaign).moved[S.SENT] == 1
    r.refresh_from_db()
    assert r.status == S.SENT
    assert simulator.physical_pieces(kind, r.idempotency_key) == 1
    # The second attempt looked first, then submitted under the same key.
    calls = [c.method for c in simulator.captured(kind)]
    assert calls[0] == "POST"
    assert calls[-1] == "POST"
    assert "GET" in calls[1:-1]
    for c in simulator.captured(kind, "POST"):
        assert r.idempotency_key in c.headers.values()


# ---------------------------------------------------------------- billing
def test_an_unbillable_org_makes_no_printer_call_and_every_waiting_row_is_the_spec_error(simulator):
    campaign, rows = ready_campaign(3, subscription_active=False)
    CampaignRecipient.objects.filter(pk=rows[0].pk).update(status=S.SENDING_STAGED)
    report = mail(campaign)
    assert report.billing_problem == "no active subscription"
    assert report.moved[ErrorMessages.BILLING_NOT_READY] == 3
    assert not simulator.requests
    assert set(campaign.recipients.values_list("status", "error_message", "error_detail")) == {
        (S.ERROR, ErrorMessages.BILLING_NOT_READY, "no active subscription")
    }
    assert not Mailpiece.objects.exists()


def test_a_billing_service_that_cannot_be_asked_mails_nothing(simulator, settings):
    settings.BILLING = {
        **settings.BILLING,
        "backend": "stripe",
        "api_key": "sk_test_x",
        "base_url": "http://127.0.0.1:9",
    }
    campaign, _ = ready_campaign(2)
    mail(campaign)
    assert not simulator.requests
    assert statuses(campaign) == {S.ERROR: 2}
    assert campaign.recipients.first().error_detail.startswith("billing could not be checked")


def test_rows_scheduled_for_later_wait_while_billing_is_not_ready_and_fail_when_due(simulator):
    campaign, _ = ready_campaign(2, subscription_active=False)
    campaign.mail_date = timezone.localdate() + timedelta(days=2)
    campaign.save()
    mail(campaign)
    assert statuses(campaign) == {S.SCHEDULED: 2}  # nothing to pay for yet
    campaign.mail_date = timezone.localdate()
    campaign.save()
    assert mail(campaign).moved[ErrorMessages.BILLING_NOT_READY] == 2
    assert statuses(campaign) == {S.ERROR: 2}
    assert not simulator.requests


def test_a_row_the_printer_already_holds_is_not_called_unbillable(simulator, monkeypatch):
    """The worker died after the printer accepted; meanwhile the org's
    subscription lapsed.  The piece is in the mail: the row must not say
    "not mailed, billing" (a later ops retry would then mail it again under
    a new key if the old one were ever dropped)."""
    campaign, (r,) = ready_campaign(1)
    crash_in_record_once(monkeypatch)
    with pytest.raises(RuntimeError):
        mail(campaign)
    type(campaign.organization).objects.filter(pk=campaign.organization_id).update(subscription_active=False)
    pipeline_sweep(actor=ACTOR, now=expired())
    mail(campaign)
    r.refresh_from_db()
    assert simulator.physical_pieces("sandbox", key_of(r)) == 1
    assert r.error_message != ErrorMessages.BILLING_NOT_READY
    # It waits, saying why; once billing works its next attempt finds the piece.
    assert r.status == S.SENDING_STAGED
    assert r.error_detail == "waiting: billing is not ready (no active subscription)"
    type(campaign.organization).objects.filter(pk=campaign.organization_id).update(subscription_active=True)
    CampaignRecipient.objects.filter(pk=r.pk).update(lease_until=None)
    mail(campaign)
    r.refresh_from_db()
    assert r.status == S.SENT
    assert simulator.physical_pieces("sandbox", key_of(r)) == 1


# ---------------------------------------------------------------- refusals
@pytest.mark.parametrize(
    ("kind", "address1", "vendor_code"),
    [
        ("sandbox", "1 Reject Road", "address_rejected"),
        ("lob", "1 Undeliverable Ln", "failed_deliverability_strictness"),
    ],
)
def test_a_refused_address_is_failed_to_make_mail_piece_with_the_printers_answer(
    simulator, kind, address1, vendor_code
):
    campaign, (bad, good) = ready_campaign(2, printer=kind)
    CampaignRecipient.objects.filter(pk=bad.pk).update(address1=address1)
    report = mail(campaign)
    assert report.moved[ErrorMessages.FAILED_TO_MAKE_MAIL_PIECE] == 1
    bad.refresh_from_db()
    assert (bad.status, bad.error_message) == (S.ERROR, ErrorMessages.FAILED_TO_MAKE_MAIL_PIECE)
    assert bad.error_detail  # the printer's words, for ops
    assert (bad.claim_token, bad.lease_until) == (None, None)
    piece = Mailpiece.objects.get(recipient=bad)
    assert (piece.status, piece.printer_id, piece.last_vendor_status) == (MailpieceStatus.ERROR, "", vendor_code)
    assert piece.reference == bad.idempotency_key
    assert piece.transitions.filter(to_status=MailpieceStatus.ERROR).count() == 1
    assert simulator.physical_pieces(kind) == 1
    good.refresh_from_db()
    assert good.status == S.SENT


def test_refused_credentials_are_failed_submission_to_printer(simulator):
    campaign, (r,) = ready_campaign(1)
    simulator.inject("sandbox", 401)
    mail(campaign)
    r.refresh_from_db()
    assert (r.status, r.error_message) == (S.ERROR, ErrorMessages.FAILED_SUBMISSION_TO_PRINTER)
    piece = Mailpiece.objects.get(recipient=r)
    assert piece.status == MailpieceStatus.ERROR
    assert piece.last_vendor_status
    assert not simulator.physical_pieces("sandbox")


# ---------------------------------------------------------------- the attempt budget
def test_a_spent_budget_with_no_piece_at_the_printer_is_failed_submission_to_printer(simulator):
    campaign, (r,) = ready_campaign(1)
    # Every attempt's first call fails (the first attempt submits, the later ones look up first).
    simulator.inject("sandbox", Fault.status(503, times=MAX_ATTEMPTS))
    for attempt in range(1, MAX_ATTEMPTS + 1):
        assert mail(campaign).moved["retry_later"] == 1
        r.refresh_from_db()
        assert (r.status, r.attempt) == (S.SENDING_STAGED, attempt)
        due_now(campaign)
    # The budget is spent: this attempt only looks, and the printer has nothing.
    assert mail(campaign).moved[ErrorMessages.FAILED_SUBMISSION_TO_PRINTER] == 1
    r.refresh_from_db()
    assert (r.status, r.error_message) == (S.ERROR, ErrorMessages.FAILED_SUBMISSION_TO_PRINTER)
    assert str(MAX_ATTEMPTS) in r.error_detail
    assert not simulator.physical_pieces("sandbox")
    assert creates(simulator, "sandbox") == 1  # the first attempt; the others never got past the lookup
    assert simulator.captured("sandbox")[-1].method == "GET"
    assert Mailpiece.objects.get(recipient=r).status == MailpieceStatus.ERROR


def test_a_spent_budget_whose_piece_exists_is_sent(simulator):
    campaign, (r,) = ready_campaign(1)
    simulator.inject("sandbox", Fault.status_after_create(503, method="POST"))  # printed; we hear 503
    simulator.inject("sandbox", Fault.status(503, times=MAX_ATTEMPTS - 1, method="GET"))
    for _ in range(MAX_ATTEMPTS):
        assert mail(campaign).moved["retry_later"] == 1
        due_now(campaign)
    r.refresh_from_db()
    assert r.attempt == MAX_ATTEMPTS
    assert mail(campaign).moved[S.SENT] == 1
    r.refresh_from_db()
    assert r.status == S.SENT
    assert simulator.physical_pieces("sandbox", r.idempotency_key) == 1
    assert creates(simulator, "sandbox") == 1


# ---------------------------------------------------------------- Stannp test mode
class StannpInTestMode(StannpHandler):
    """Stannp answering as it does in test mode: id "0" for every piece, status
    "test", nothing printed."""

    def create(self, headers, body):
        status, out_headers, out = super().create(headers, body)
        if status in (200, 409):
            answer = json.loads(out)
            piece = self.store.piece(self.name, str(answer["data"]["id"]))
            if piece is not None:
                self.store.update(self.name, piece.id, status="test", physical=False)
            answer["data"].update(id="0", status="test")
            out = json.dumps(answer).encode()
        return status, out_headers, out


def test_stannp_test_mode_pieces_are_stored_as_test_without_the_shared_zero_id(simulator, settings):
    sim = Simulator(handlers={"stannp": StannpInTestMode}).start()
    settings.PRINTERS_CONF["stannp"]["base_url"] = sim.url("stannp")
    try:
        campaign, _ = ready_campaign(2, printer="stannp")
        assert mail(campaign).moved[S.SENT] == 2
        assert creates(sim, "stannp") == 2
    finally:
        sim.stop()
    assert statuses(campaign) == {S.SENT: 2}
    assert set(Mailpiece.objects.values_list("status", "printer_id")) == {(MailpieceStatus.TEST, "")}
    assert Mailpiece.objects.count() == 2


# ---------------------------------------------------------------- scheduling
def test_a_future_mail_date_schedules_then_mails_on_the_day(simulator):
    campaign, _ = ready_campaign(3)
    campaign.mail_date = timezone.localdate() + timedelta(days=3)
    campaign.save()
    report = mail(campaign)
    assert report.moved[S.SCHEDULED] == 3
    assert statuses(campaign) == {S.SCHEDULED: 3}
    assert mail(campaign).claimed == 0
    assert not simulator.requests
    campaign.mail_date = timezone.localdate()
    campaign.save()
    assert mail(campaign).moved[S.SENT] == 3
    assert statuses(campaign) == {S.SENT: 3}
    assert one_piece_each(simulator, campaign)
    for r in campaign.recipients.all():
        assert (r.claim_token, r.lease_until) == (None, None)
        assert list(r.transitions.order_by("created", "pk").values_list("from_status", "to_status")) == [
            (S.PROOFED, S.SCHEDULED),
            (S.SCHEDULED, S.SENT),
        ]


def test_a_scheduled_row_with_an_unknown_outcome_stays_scheduled_and_is_found_later(simulator):
    campaign, (r,) = ready_campaign(1)
    campaign.mail_date = timezone.localdate() + timedelta(days=1)
    campaign.save()
    mail(campaign)
    campaign.mail_date = timezone.localdate()
    campaign.save()
    simulator.inject("sandbox", Fault.timeout_after_create(1.0, method="POST"))
    assert mail(campaign).moved["retry_later"] == 1
    r.refresh_from_db()
    assert (r.status, r.attempt, r.claim_token) == (S.SCHEDULED, 1, None)
    assert r.lease_until > timezone.now()
    assert mail(campaign).claimed == 0  # backing off
    due_now(campaign)
    assert mail(campaign).moved[S.SENT] == 1
    assert simulator.physical_pieces("sandbox", key_of(r)) == 1
    assert creates(simulator, "sandbox") == 1


def test_a_scheduled_row_held_by_a_dead_worker_is_released_by_the_sweeper(simulator, monkeypatch):
    campaign, (r,) = ready_campaign(1)
    campaign.mail_date = timezone.localdate() + timedelta(days=1)
    campaign.save()
    mail(campaign)
    campaign.mail_date = timezone.localdate()
    campaign.save()
    crash_in_record_once(monkeypatch)
    with pytest.raises(RuntimeError):
        mail(campaign)  # submitted, then the worker dies before its commit
    r.refresh_from_db()
    assert (r.status, r.claim_token is not None) == (S.SCHEDULED, True)
    assert mail(campaign).claimed == 0  # held by the dead worker
    later = expired()
    assert pipeline_sweep(actor=ACTOR, now=later)[S.SCHEDULED] == 1
    assert mail(campaign, now=later).moved[S.SENT] == 1
    assert simulator.physical_pieces("sandbox", key_of(r)) == 1
    assert creates(simulator, "sandbox") == 1


def test_a_scheduled_card_archived_before_its_day_is_never_mailed(simulator):
    from campaigns.admin import _run_archive

    campaign, (kept, dropped) = ready_campaign(2)
    campaign.mail_date = timezone.localdate() + timedelta(days=3)
    campaign.save()
    mail(campaign)
    text, _ = _run_archive(CampaignRecipient.objects.filter(pk=dropped.pk), ACTOR)
    assert text == "Archive: 1 archived."
    campaign.mail_date = timezone.localdate()
    campaign.save()
    assert mail(campaign).moved[S.SENT] == 1
    assert statuses(campaign) == {S.SENT: 1, S.ARCHIVED: 1}
    assert simulator.physical_pieces("sandbox", key_of(dropped)) == 0
    assert simulator.physical_pieces("sandbox", key_of(kept)) == 1


@pytest.mark.parametrize("days", [-2, 0])
def test_a_mail_date_today_or_past_mails_at_once(simulator, days):
    campaign, _ = ready_campaign(2)
    campaign.mail_date = timezone.localdate() + timedelta(days=days)
    campaign.save()
    assert mail(campaign).moved[S.SENT] == 2
    assert not RecipientTransition.objects.filter(recipient__campaign=campaign, to_status=S.SCHEDULED).exists()
    assert one_piece_each(simulator, campaign)


def test_a_paused_campaign_mails_nothing(simulator):
    campaign, _ = ready_campaign(2, status=S.SENDING_STAGED)
    campaign.paused = True
    campaign.save()
    assert mail(campaign).paused
    assert not simulator.requests
    assert statuses(campaign) == {S.SENDING_STAGED: 2}


# ---------------------------------------------------------------- concurrency
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("scheduled", [False, True], ids=["staged", "scheduled"])
def test_two_workers_mailing_one_campaign_at_once_mail_each_recipient_once(simulator, scheduled):
    campaign, _ = ready_campaign(24)
    if scheduled:  # Scheduled rows are claimed by token and lease alone, not by the FSM
        campaign.mail_date = timezone.localdate() + timedelta(days=1)
        campaign.save()
        mail(campaign)
        assert statuses(campaign) == {S.SCHEDULED: 24}
        campaign.mail_date = timezone.localdate()
        campaign.save()

    def worker() -> int:
        total = 0
        while True:
            report = mail(campaign, batch_size=4, concurrency=2)
            total += report.moved[S.SENT]
            if not report.claimed and not report.moved[S.SENDING_STAGED]:
                return total

    done = race([worker, worker])
    assert sum(done) == 24
    assert statuses(campaign) == {S.SENT: 24}
    assert one_piece_each(simulator, campaign)
    assert creates(simulator, "sandbox") == 24
    assert Mailpiece.objects.count() == 24
    per = Counter(
        RecipientTransition.objects.filter(recipient__campaign=campaign, to_status=S.SENT).values_list(
            "recipient_id", flat=True
        )
    )
    assert set(per.values()) == {1}


def test_a_printer_id_we_already_hold_fails_that_row_not_the_batch(simulator):
    """A printer answering with an id already recorded for another piece (it
    should never happen) must not roll back the batch the printer holds."""
    campaign, (a, _) = ready_campaign(2)
    mail(campaign)
    taken = Mailpiece.objects.get(recipient=a).printer_id
    other, (c, d) = ready_campaign(2)
    real = SandboxHandler.handle

    def repeat_id(self, method, path, query, headers, body):
        status, hdrs, data = real(self, method, path, query, headers, body)
        if method == "POST" and json.loads(body).get("metadata", {}).get("recipient_id") == str(c.pk):
            payload = json.loads(data)
            payload["id"] = taken
            data = json.dumps(payload).encode()
        return status, hdrs, data

    SandboxHandler.handle = repeat_id
    try:
        mail(other)
    finally:
        SandboxHandler.handle = real
    c.refresh_from_db()
    d.refresh_from_db()
    assert (c.status, c.error_message) == (S.ERROR, ErrorMessages.FAILED_SUBMISSION_TO_PRINTER)
    assert taken in c.error_detail
    assert d.status == S.SENT


@pytest.mark.django_db(transaction=True)
def test_keys_and_first_attempts_are_saved_in_one_commit_that_survives_a_power_cut(simulator, monkeypatch):
    """Saved before any call, in one transaction; on SQLite (synchronous=NORMAL
    otherwise) that commit syncs the WAL: a power cut after the printer took
    a card cannot take back the row's first attempt, whose next try then
    looks the card up instead of printing it again."""
    from django.db import connection

    campaign, _ = ready_campaign(3)
    real = service.recipients_write_rows
    seen: list[tuple[bool, int | None]] = []

    def write(**kwargs: Any) -> None:
        level = None
        if connection.vendor == "sqlite":
            with connection.cursor() as cursor:
                cursor.execute("PRAGMA synchronous")
                level = int(cursor.fetchone()[0])
        seen.append((connection.in_atomic_block, level))
        real(**kwargs)

    monkeypatch.setattr(service, "recipients_write_rows", write)
    mail(campaign)
    assert seen == [(True, 2 if connection.vendor == "sqlite" else None)]
    assert statuses(campaign) == {S.SENT: 3}
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA synchronous")
            assert cursor.fetchone()[0] == 1  # the connection's own level again


def test_a_card_whose_worker_died_says_why_it_waits_and_keeps_its_attempts(simulator, monkeypatch):
    """The process dies once the batch's requests are saved and before the
    printer has them: the sweep puts each card back saying why it waits (not
    an empty Why column), and a death is not counted as a failed attempt, so
    a deploy that kills workers pushes no card towards Error."""
    from campaigns.pipeline.sweeper import WORKER_STOPPED

    campaign, (r,) = ready_campaign(1)

    def dies(*args: Any, **kwargs: Any) -> Any:
        raise SystemExit("the worker process died")

    for _ in range(MAX_ATTEMPTS + 1):
        monkeypatch.setattr(service._CallPool, "send", dies)
        with pytest.raises(SystemExit):
            mail(campaign, concurrency=1)
        assert pipeline_sweep(actor=ACTOR, now=expired())[S.SENDING] == 1
        r.refresh_from_db()
        assert (r.status, r.attempt, r.error_detail) == (S.SENDING_STAGED, 0, WORKER_STOPPED)
        due_now(campaign)
    monkeypatch.undo()
    mail(campaign)
    r.refresh_from_db()
    assert (r.status, r.error_detail) == (S.SENT, "")
    assert simulator.physical_pieces("sandbox") == 1
