"""A recipient's name or address edited in the admin after its proof was made:
the card (whose back shows the address, whose front may greet by name) is
made again before anything is mailed, and the printer is sent the new data
and the new card under a key no earlier request used.  A card on its way to
the printer cannot be edited at all."""

from __future__ import annotations

import json
import threading
import uuid
from collections import Counter

import pytest
from django.urls import reverse
from django.utils import timezone

from campaigns.models import PROOF_OUTDATED, CampaignRecipient, ErrorMessages, RecipientTransition
from campaigns.proofing.base import ProofJob, RenderedProof
from campaigns.proofing.public import proof_public_url
from campaigns.proofing.service import campaign_proof
from campaigns.tests.factories import CampaignFactory, CampaignRecipientFactory, OrganizationFactory
from campaigns.tests.test_mailing_stage import ACTOR, due_now, key_of, mail, ready_campaign
from campaigns.tests.test_ops_admin import change_url, form_post, shown
from campaigns.tests.test_proofing_stage import approve
from printers import conftest as printer_fixtures
from printers.simulator import Fault

pytestmark = pytest.mark.django_db
simulator = printer_fixtures.simulator
S = CampaignRecipient.Status
CHANGELIST = reverse("admin:campaigns_campaignrecipient_changelist")


class AddressRenderer:
    """Cards whose back is the address block, as the real renderer draws it;
    keeps every job."""

    name = "address"

    def __init__(self) -> None:
        self.jobs: list[ProofJob] = []
        self.lock = threading.Lock()

    def render(self, job: ProofJob) -> RenderedProof:
        with self.lock:
            self.jobs.append(job)
        front = f"Hello {job.merge['first_name']}".encode()
        return RenderedProof(front=front, back="\n".join(job.address_lines).encode())

    def addresses(self, recipient_id: int) -> list[str]:
        return [job.address_lines[-2] for job in self.jobs if job.recipient_id == recipient_id]


def proofed_campaign(**row: str):
    campaign = CampaignFactory(organization=OrganizationFactory(), printer="sandbox", discount_enabled=False)
    r = CampaignRecipientFactory(campaign=campaign, status=S.PROOFING_STAGED, **row)
    approve(campaign)
    renderer = AddressRenderer()
    campaign_proof(campaign=campaign, actor=ACTOR, renderer=renderer)
    r.refresh_from_db()
    assert r.status == S.PROOFED
    return campaign, r, renderer


def proofed_times(r: CampaignRecipient) -> int:
    return RecipientTransition.objects.filter(recipient=r, to_status=S.PROOFED).count()


def test_an_address_fixed_in_the_admin_after_a_refusal_is_mailed_on_a_card_made_again(admin_client, simulator):
    campaign, r, renderer = proofed_campaign(address1="1 Reject Road")
    mail(campaign)
    r.refresh_from_db()
    assert (r.status, r.error_message) == (S.ERROR, ErrorMessages.FAILED_TO_MAKE_MAIL_PIECE)
    old_key = r.idempotency_key
    assert r.first_attempt_at is not None
    assert old_key

    # Ops fix the address on the recipient's page.
    saved = admin_client.post(change_url(r), form_post(r, address1="12 Accepted Avenue"), follow=True)
    assert "a retry makes the proof again before it is mailed" in shown(saved)
    r.refresh_from_db()
    assert (r.status, r.proof_version) == (S.ERROR, PROOF_OUTDATED)
    # Refused by the printer, so nothing exists under the old key: the next
    # request is a new generation, never the saved old address replayed.
    assert (r.submission_gen, r.idempotency_key, r.first_attempt_at) == (1, "", None)
    assert "submission" not in r.json

    # "Retry sending" makes the card again first.
    retried = admin_client.post(CHANGELIST, {"action": "retry_sending", "_selected_action": [r.pk]}, follow=True)
    assert "1 to proofing first (name or address edited since the proof)" in shown(retried)
    assert [m.level_tag for m in retried.context["messages"]] == ["success"]  # it moved: not a warning
    r.refresh_from_db()
    assert r.status == S.PROOFING_STAGED

    campaign_proof(campaign=campaign, actor=ACTOR, renderer=renderer)
    r.refresh_from_db()
    assert r.status == S.PROOFED
    assert r.proof_version != PROOF_OUTDATED
    assert renderer.addresses(r.pk)[-1] == "12 Accepted Avenue"
    mail(campaign)
    r.refresh_from_db()
    assert r.status == S.SENT
    sent = r.json["submission"]
    assert sent["to"]["address1"] == "12 Accepted Avenue"
    assert (sent["front"], sent["back"]) == (proof_public_url(r.proof_url), proof_public_url(r.proof_back_url))
    assert r.idempotency_key == key_of(r) != old_key
    assert simulator.physical_pieces("sandbox") == 1
    assert proofed_times(r) == 2


def test_retry_from_proofing_takes_an_edited_mailing_error_too(admin_client, simulator):
    campaign, r, renderer = proofed_campaign(address1="1 Reject Road")
    mail(campaign)
    admin_client.post(change_url(r), form_post(r, address1="12 Accepted Avenue"))
    # The page offers the retry that makes the card again, not the one that
    # keeps it, and says why the proof it shows is not the card to be mailed.
    page = admin_client.get(change_url(r)).content.decode()
    assert "Outdated: made before the name or address was edited" in page
    assert 'value="retry_proofing"' in page
    assert 'value="retry_sending"' not in page
    retried = admin_client.post(CHANGELIST, {"action": "retry_proofing", "_selected_action": [r.pk]}, follow=True)
    assert "1 sent back to proofing" in shown(retried)
    campaign_proof(campaign=campaign, actor=ACTOR, renderer=renderer)
    mail(campaign)
    r.refresh_from_db()
    assert (r.status, r.json["submission"]["to"]["address1"]) == (S.SENT, "12 Accepted Avenue")
    assert simulator.physical_pieces("sandbox") == 1


def test_a_mailing_error_never_sent_keeps_its_key_when_edited(admin_client, simulator):
    campaign, r, _renderer = proofed_campaign()
    type(campaign.organization).objects.filter(pk=campaign.organization_id).update(subscription_active=False)
    mail(campaign)
    r.refresh_from_db()
    assert (r.status, r.error_message, r.first_attempt_at) == (S.ERROR, ErrorMessages.BILLING_NOT_READY, None)
    admin_client.post(change_url(r), form_post(r, last_name="Okafor-Smith"))
    r.refresh_from_db()
    assert (r.proof_version, r.submission_gen) == (PROOF_OUTDATED, 0)


def test_a_proofed_card_edited_in_the_admin_is_made_again_before_it_is_mailed(admin_client, simulator):
    campaign, r, renderer = proofed_campaign(first_name="Jon")
    saved = admin_client.post(change_url(r), form_post(r, first_name="John"), follow=True)
    assert "Saved: now Queued for proofing. Its card is made again from the new data" in shown(saved)
    r.refresh_from_db()
    assert r.status == S.PROOFING_STAGED
    mail(campaign)  # nothing to mail: the old card is gone from the mailing stage's reach
    assert simulator.physical_pieces("sandbox") == 0
    campaign_proof(campaign=campaign, actor=ACTOR, renderer=renderer)
    mail(campaign)
    r.refresh_from_db()
    assert r.status == S.SENT
    assert renderer.jobs[-1].merge["first_name"] == "John"
    assert simulator.physical_pieces("sandbox", key_of(r)) == 1


def test_a_staged_card_never_sent_is_made_again_too(admin_client, simulator):
    _campaign, (r,) = ready_campaign(1, status=S.SENDING_STAGED)
    admin_client.post(change_url(r), form_post(r, city="Shelbyville"))
    r.refresh_from_db()
    assert (r.status, r.proof_version) == (S.PROOFING_STAGED, PROOF_OUTDATED)


def test_a_scheduled_card_before_its_day_is_made_again_with_the_new_address(admin_client, simulator):
    """Nothing of it is at the printer before its day: the edit is saved, the
    card made again, and it is Scheduled again for its day once approved."""
    _campaign, (r,) = ready_campaign(1, status=S.SCHEDULED)
    page = admin_client.post(change_url(r), form_post(r, address1="99 Elsewhere Street"), follow=True)
    r.refresh_from_db()
    assert (r.status, r.address1, r.proof_version) == (S.PROOFING_STAGED, "99 Elsewhere Street", PROOF_OUTDATED)
    assert "made again from the new data" in shown(page)


def test_a_scheduled_card_a_worker_holds_cannot_change(admin_client):
    _campaign, (r,) = ready_campaign(1, status=S.SCHEDULED)
    CampaignRecipient.objects.filter(pk=r.pk).update(claim_token=uuid.uuid4())  # its day came: being sent
    page = admin_client.post(change_url(r), form_post(r, address1="99 Elsewhere Street"))
    assert "already on its way to the printer" in page.content.decode()
    r.refresh_from_db()
    assert r.status == S.SCHEDULED
    assert r.address1 != "99 Elsewhere Street"


@pytest.mark.parametrize(
    ("status", "attempted", "says"),
    [
        (S.SCHEDULED, True, "already on its way to the printer"),  # its day came and it was tried
        (S.SENDING, True, "already on its way to the printer"),
        (S.SENDING_STAGED, True, "already on its way to the printer"),
        (S.PROOFING, False, "Its proof is being made right now"),
        (S.ADDRESS_ENRICHING, False, "Its address is being looked up right now"),
    ],
)
def test_the_name_and_address_of_a_card_on_its_way_cannot_change(admin_client, status, attempted, says):
    """Even for a superuser, who may correct a mailed record: here the printer
    is, or may soon be, making the card from the data it was sent."""
    _campaign, (r,) = ready_campaign(1, status=status)
    if attempted:
        CampaignRecipient.objects.filter(pk=r.pk).update(first_attempt_at=timezone.now(), idempotency_key="k")
    before = Counter(CampaignRecipient.objects.filter(pk=r.pk).values_list("address1", "status"))
    page = admin_client.post(change_url(r), form_post(r, address1="99 Elsewhere Street"))
    assert page.status_code == 200  # the form again, with the reason
    assert says in page.content.decode()
    assert Counter(CampaignRecipient.objects.filter(pk=r.pk).values_list("address1", "status")) == before


def test_a_mailed_record_may_still_be_corrected_by_a_superuser(admin_client):
    _campaign, (r,) = ready_campaign(1, status=S.SENT)
    admin_client.post(change_url(r), form_post(r, address1="99 Corrected Street"))
    r.refresh_from_db()
    assert (r.status, r.address1) == (S.SENT, "99 Corrected Street")
    assert r.proof_version != PROOF_OUTDATED  # the card was made and mailed: nothing to make again


# ---------------------------------------------------------------- what a save changes
def test_an_email_edit_that_repairs_the_zip_makes_the_card_again(admin_client):
    """The validator's value counts, not what was typed: the ZIP stored as
    2134 is saved as 02134, so the card (whose back shows it) is made again."""
    _c, (r,) = ready_campaign(1, status=S.PROOFED)
    CampaignRecipient.objects.filter(pk=r.pk).update(zip="2134", country="US", state="MA")
    r.refresh_from_db()
    admin_client.post(change_url(r), form_post(r, email="new@example.com"))
    r.refresh_from_db()
    assert (r.zip, r.email, r.status, r.proof_version) == (
        "02134",
        "new@example.com",
        S.PROOFING_STAGED,
        PROOF_OUTDATED,
    )


def test_a_value_typed_as_it_is_stored_is_not_an_edit(admin_client):
    _c, (r,) = ready_campaign(1, status=S.PROOFED)
    CampaignRecipient.objects.filter(pk=r.pk).update(state="MA", country="US")
    r.refresh_from_db()
    admin_client.post(change_url(r), form_post(r, state="ma"))  # stored as MA: the same
    r.refresh_from_db()
    assert (r.status, r.state) == (S.PROOFED, "MA")


@pytest.mark.parametrize("press", ["archive", ""], ids=["archive button", "plain save"])
def test_a_claim_a_worker_takes_while_the_page_posts_is_not_written_back(admin_client, monkeypatch, press):
    """The page saves only what the form changes: a whole-row save wrote back,
    as loaded, the claim and key a worker wrote meanwhile, and then the
    Archive button found the card untouched and archived a card in flight."""
    from campaigns.admin import RecipientForm
    from campaigns.tests.factories import CampaignRecipientFactory

    card = CampaignRecipientFactory(status=S.SCHEDULED)
    token = uuid.uuid4()
    real = RecipientForm.clean

    def loaded_then_claimed(self):
        # The mailing worker claims the due card after the page loaded the row.
        CampaignRecipient.objects.filter(pk=self.instance.pk).update(
            claim_token=token, lease_until=timezone.now(), first_attempt_at=timezone.now(), idempotency_key="key-1"
        )
        return real(self)

    monkeypatch.setattr(RecipientForm, "clean", loaded_then_claimed)
    data = form_post(card, email="ops@example.com")
    if press:
        data["_fsm_transition_to"] = press
    admin_client.post(change_url(card), data, follow=True)
    card.refresh_from_db()
    assert (card.status, card.claim_token, card.idempotency_key) == (S.SCHEDULED, token, "key-1")
    assert card.email == "ops@example.com"  # the edit itself is saved


@pytest.mark.django_db(transaction=True)
def test_a_claim_committed_by_another_connection_is_not_written_back(admin_client, monkeypatch):
    """The same with the worker in its own connection (PostgreSQL; on SQLite
    the page's transaction holds the write lock, so no worker writes meanwhile)."""
    import threading

    from django.db import connection

    from campaigns.admin import RecipientForm
    from campaigns.tests.factories import CampaignRecipientFactory

    if connection.vendor != "postgresql":
        pytest.skip("SQLite: the page's IMMEDIATE transaction keeps every worker out")
    card = CampaignRecipientFactory(status=S.SCHEDULED)
    token = uuid.uuid4()
    real = RecipientForm.clean

    def worker():
        CampaignRecipient.objects.filter(pk=card.pk, claim_token__isnull=True).update(
            claim_token=token, lease_until=timezone.now(), first_attempt_at=timezone.now(), idempotency_key="key-1"
        )
        connection.close()

    def clean(self):
        thread = threading.Thread(target=worker)
        thread.start()
        thread.join()
        return real(self)

    monkeypatch.setattr(RecipientForm, "clean", clean)
    admin_client.post(change_url(card), {**form_post(card), "_fsm_transition_to": "archive"}, follow=True)
    card.refresh_from_db()
    assert (card.status, card.claim_token) == (S.SCHEDULED, token)


# ---------------------------------------------------------------- a card the printer may have
def mailed_once_on_the_next_run(campaign, r: CampaignRecipient, simulator) -> None:
    """The backoff over, the next run mails the card: Sent, one piece at the printer."""
    due_now(campaign)
    mail(campaign)
    r.refresh_from_db()
    assert r.status == S.SENT
    assert simulator.physical_pieces("sandbox") == 1


def test_a_queue_failure_never_errors_a_card_the_printer_may_have(admin_client, simulator):
    """The printer made the piece but our call timed out; then the task queue
    was down and the doorbell failed the campaign's staged rows.  Such a row
    went to Error, and its retry (or an edit) gave it a new key: two cards."""
    from campaigns.pipeline import doorbell

    campaign, (r,) = ready_campaign(1)
    simulator.inject("sandbox", Fault.timeout_after_create(1.0, method="POST"))
    mail(campaign)
    r.refresh_from_db()
    assert (r.status, r.first_attempt_at is not None) == (S.SENDING_STAGED, True)
    doorbell._fail_queue(campaign.pk, "the task queue could not be reached 3 times in a row")
    r.refresh_from_db()
    assert r.status == S.SENDING_STAGED  # waits, saying why
    assert r.why == "Waiting: the task queue could not be reached 3 times in a row"
    mailed_once_on_the_next_run(campaign, r, simulator)


def test_an_error_row_the_printer_may_have_keeps_its_key_and_refuses_an_edit(admin_client, simulator):
    """Rows left in Error by the old doorbell rule (sent before, queue error):
    the retry keeps the key and looks first; the page refuses the edit."""

    campaign, (r,) = ready_campaign(1)
    simulator.inject("sandbox", Fault.timeout_after_create(1.0, method="POST"))
    mail(campaign)
    CampaignRecipient.objects.filter(pk=r.pk).update(
        status=S.ERROR, error_message=ErrorMessages.FAILED_SUBMISSION_TO_MAILING_QUEUE
    )
    r.refresh_from_db()
    page = admin_client.post(change_url(r), form_post(r, address1="1 Other Street"))
    assert "The printer may already have this card" in page.content.decode()
    admin_client.post(CHANGELIST, {"action": "retry_sending", "_selected_action": [r.pk]})
    r.refresh_from_db()
    assert (r.status, r.submission_gen) == (S.SENDING_STAGED, 0)
    mailed_once_on_the_next_run(campaign, r, simulator)


def test_a_lookup_the_printer_refuses_leaves_the_outcome_unknown(admin_client, simulator):
    """A 401 on the lookup (rotated credentials) is not "nothing at the
    printer": the row waits with its key, and is never Error (whose retry
    could use a new key)."""

    campaign, (r,) = ready_campaign(1)
    simulator.inject("sandbox", Fault.timeout_after_create(1.0, method="POST"))
    mail(campaign)
    simulator.inject("sandbox", Fault.status(401, method="GET"))
    due_now(campaign)
    mail(campaign)
    r.refresh_from_db()
    assert (r.status, r.submission_gen) == (S.SENDING_STAGED, 0)
    assert r.why.startswith("Will try again (2 attempts so far): looking the piece up failed: ")
    mailed_once_on_the_next_run(campaign, r, simulator)


def test_an_id_conflict_keeps_the_key_on_retry(admin_client, simulator, monkeypatch):
    """The printer answered with an id another mailpiece has: it accepted
    something under the row's key, so its Error keeps the key on retry."""
    import dataclasses

    from mailpieces.models import Mailpiece
    from printers.sandbox.client import SandboxPrinter

    campaign, (a, b) = ready_campaign(2)
    CampaignRecipient.objects.filter(pk=b.pk).update(status=S.SKIPPED)
    mail(campaign)
    taken = Mailpiece.objects.get(recipient=a).printer_id
    CampaignRecipient.objects.filter(pk=b.pk).update(status=S.PROOFED)
    real = SandboxPrinter.submit
    monkeypatch.setattr(
        SandboxPrinter, "submit", lambda self, request: dataclasses.replace(real(self, request), printer_id=taken)
    )
    mail(campaign)
    monkeypatch.setattr(SandboxPrinter, "submit", real)
    b.refresh_from_db()
    assert (b.status, b.error_message) == (S.ERROR, ErrorMessages.FAILED_SUBMISSION_TO_PRINTER)
    assert b.json["submission"]["reference"] == b.idempotency_key  # the saved request kept beside the flag
    admin_client.post(CHANGELIST, {"action": "retry_sending", "_selected_action": [b.pk]})
    b.refresh_from_db()
    assert (b.status, b.submission_gen) == (S.SENDING_STAGED, 0)  # the same key: it looks first
    due_now(campaign)
    mail(campaign)
    assert simulator.physical_pieces("sandbox") == 2  # one each, never a third


def test_the_history_names_what_was_stored_not_what_was_typed(admin_client):
    from django.contrib.admin.models import LogEntry

    _c, (r,) = ready_campaign(1, status=S.PROOFED)
    CampaignRecipient.objects.filter(pk=r.pk).update(state="MA", country="US", zip="2134")
    r.refresh_from_db()
    admin_client.post(change_url(r), form_post(r, state="ma"))  # the ZIP is repaired, the state is the same
    assert LogEntry.objects.last().get_change_message() == "Changed Zip."


def test_a_row_a_worker_moves_while_the_page_posts_says_so_instead_of_a_500(admin_client, monkeypatch):
    from campaigns.admin import RecipientForm

    _c, (r,) = ready_campaign(1, status=S.PROOFED)
    real = RecipientForm.clean

    def moved(self):
        CampaignRecipient.objects.filter(pk=self.instance.pk).update(status=S.SENDING_STAGED)  # the mailing stage
        return real(self)

    monkeypatch.setattr(RecipientForm, "clean", moved)
    page = admin_client.post(change_url(r), form_post(r, email="x@example.com"), follow=True)
    assert page.status_code == 200
    assert "A worker moved this recipient on while you were editing it, so nothing was saved" in shown(page)
    before = r.email
    r.refresh_from_db()
    assert r.email == before  # nothing saved (here the "worker" shares the page's transaction, rolled back too)


# ---------------------------------------------------------------- the design changed while cards waited to be mailed
def change_the_card_size(campaign) -> None:
    from campaigns.proofing.design import campaign_approval, campaign_withdraw_stale_approvals

    campaign.size = "6x9"
    campaign.save()
    campaign_withdraw_stale_approvals(campaign=campaign, reason="the card size changed")
    assert campaign_approval(campaign) is None


def test_a_card_queued_for_mailing_when_the_design_changes_is_made_again_not_mailed(simulator):
    """Rows staged for mailing (waiting for the next batch, or a backoff)
    when ops change the design: the approval they were staged under no
    longer holds, so none reaches the printer; the proofing stage makes them
    again, and they wait for the new design's approval."""
    from campaigns.pipeline.runner import campaign_advance

    campaign, rows = ready_campaign(2)
    mail(campaign, batch_size=1)  # a batch of one: the second row waits in SendingStaged
    rows[1].refresh_from_db()
    assert rows[1].status == S.SENDING_STAGED
    assert rows[1].first_attempt_at is None
    sent = simulator.physical_pieces("sandbox")
    change_the_card_size(campaign)
    mail(campaign)  # a mailing run before the proofing stage's: it claims nothing
    assert simulator.physical_pieces("sandbox") == sent
    campaign_advance(campaign.pk, actor=ACTOR)
    rows[1].refresh_from_db()
    assert rows[1].status in (S.PROOFING_STAGED, S.PROOFED)  # made again for the new design (the sample waits)
    assert simulator.physical_pieces("sandbox") == sent


def test_a_card_tried_before_the_design_changed_finishes_as_it_was_sent(simulator):
    """Its first attempt timed out after the printer made the piece: the
    printer holds the card as it was sent, so it is not made again; the next
    attempt looks it up and records it, and nothing is printed twice."""
    campaign, (r,) = ready_campaign(1)
    simulator.inject("sandbox", Fault.timeout_after_create(0.0))
    mail(campaign)
    r.refresh_from_db()
    assert r.status == S.SENDING_STAGED
    assert r.first_attempt_at is not None
    change_the_card_size(campaign)
    campaign_proof(campaign=campaign, actor=ACTOR)
    r.refresh_from_db()
    assert r.status == S.SENDING_STAGED  # not sent back to proofing
    due_now(campaign)
    mail(campaign)
    r.refresh_from_db()
    assert r.status == S.SENT
    assert simulator.physical_pieces("sandbox") == 1


def test_scheduled_cards_of_a_design_changed_since_are_made_again_before_their_day(simulator):
    """Cards waiting for their mail date when ops change the card size: on
    the day none goes out with the old artwork on a card of the new size;
    they are made again and wait for the new design's approval."""
    import datetime as dt

    from campaigns.models import Campaign
    from campaigns.pipeline.runner import campaign_advance

    campaign, _rows = ready_campaign(2)
    Campaign.objects.filter(pk=campaign.pk).update(mail_date=timezone.localdate() + dt.timedelta(days=7))
    campaign.refresh_from_db()
    mail(campaign)
    assert set(campaign.recipients.values_list("status", flat=True)) == {S.SCHEDULED}
    change_the_card_size(campaign)
    Campaign.objects.filter(pk=campaign.pk).update(mail_date=timezone.localdate())  # the day comes
    campaign.refresh_from_db()
    mail(campaign)  # before the proofing stage's run: nothing is claimed
    assert simulator.physical_pieces("sandbox") == 0
    campaign_advance(campaign.pk, actor=ACTOR)
    assert simulator.physical_pieces("sandbox") == 0
    statuses = set(campaign.recipients.values_list("status", flat=True))
    assert statuses <= {S.PROOFING_STAGED, S.PROOFED}  # made again; the new samples wait for a person
    approve(campaign)
    campaign_advance(campaign.pk, actor=ACTOR)
    sent = {json.loads(c.body)["front"]: json.loads(c.body)["size"] for c in simulator.captured("sandbox", "POST")}
    assert set(campaign.recipients.values_list("status", flat=True)) == {S.SENT}
    made = {json_["submission"]["front"]: url for url, json_ in campaign.recipients.values_list("proof_url", "json")}
    assert set(sent) == set(made)  # each card went with the link to its own new front ...
    assert set(sent.values()) == {"6x9"}  # ... on a card of the new size ...
    assert all("6x9" in url for url in made.values())  # ... drawn for it


def test_a_scheduled_card_already_tried_keeps_its_design(simulator):
    """Its day came and an attempt was made (the printer may have it): it
    is not made again when the design changes; it finishes as it was sent."""
    import datetime as dt

    from campaigns.models import Campaign

    campaign, (r,) = ready_campaign(1)
    Campaign.objects.filter(pk=campaign.pk).update(mail_date=timezone.localdate() + dt.timedelta(days=7))
    campaign.refresh_from_db()
    mail(campaign)
    CampaignRecipient.objects.filter(pk=r.pk).update(first_attempt_at=timezone.now())  # tried on its day
    change_the_card_size(campaign)
    campaign_proof(campaign=campaign, actor=ACTOR)
    r.refresh_from_db()
    assert r.status == S.SCHEDULED
