"""The proofing stage end to end on the database: billing fails closed, the
approval gate, crashes, duplicate deliveries, lost and failed enqueues,
transient and permanent failures, the ops retry."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta

import pytest
from django.utils import timezone

from campaigns.billing.local import PRICE_DRIFT
from campaigns.claims import recipients_claim
from campaigns.discounts.base import DiscountError, discount_code_for
from campaigns.discounts.local import LocalDiscountClient
from campaigns.models import CampaignRecipient, ErrorMessages, LocalDiscountCode, ProofTemplate, RecipientTransition
from campaigns.pipeline import doorbell
from campaigns.pipeline.sweeper import pipeline_sweep
from campaigns.proofing.base import ProofError, ProofJob, RenderedProof
from campaigns.proofing.design import SAMPLE_SIZE, ApprovalError, campaign_approval, campaign_approve_proofs
from campaigns.proofing.retry import recipients_retry_proofing
from campaigns.proofing.service import campaign_proof
from campaigns.tasks import campaign_run_task, pipeline_tick_task
from campaigns.tests.factories import CampaignFactory, CampaignRecipientFactory, OrganizationFactory
from common.fsm import Actor
from common.testing import race

pytestmark = pytest.mark.django_db
S = CampaignRecipient.Status
ACTOR = Actor("test")


class CountingRenderer:
    """Makes tiny stand-in images and counts renders per recipient; can be
    told to fail."""

    name = "counting"

    def __init__(self, fail: ProofError | None = None) -> None:
        self.renders: Counter[int] = Counter()
        self.fail = fail
        self.lock = threading.Lock()
        self.jobs: list[ProofJob] = []

    def render(self, job: ProofJob) -> RenderedProof:
        with self.lock:
            self.renders[job.recipient_id] += 1
            self.jobs.append(job)
        if self.fail is not None:
            raise self.fail
        return RenderedProof(front=b"front-" + str(job.recipient_id).encode(), back=b"back")


def staged_campaign(n: int = 5, *, approved: bool = True, discount: bool = True, **org: object):
    campaign = CampaignFactory(
        organization=OrganizationFactory(**org),
        discount_enabled=discount,
        discount_prefix="WIN",
        discount_value="10%",
    )
    rows = CampaignRecipientFactory.create_batch(n, campaign=campaign, status=S.PROOFING_STAGED)
    if approved:
        approve(campaign)
    return campaign, rows


def approve(campaign):
    """An approval of the current design, as a person gives it after seeing samples."""
    from campaigns.models import ProofApproval
    from campaigns.proofing.design import campaign_design

    return ProofApproval.objects.create(campaign=campaign, design_version=campaign_design(campaign).version)


def statuses(campaign) -> Counter[str]:
    return Counter(campaign.recipients.values_list("status", flat=True))


def proofed_once_each(campaign) -> bool:
    per = Counter(
        RecipientTransition.objects.filter(recipient__campaign=campaign, to_status=S.PROOFED).values_list(
            "recipient_id", flat=True
        )
    )
    return all(n == 1 for n in per.values()) and len(per) == campaign.recipients.count()


def past_proofing(campaign) -> bool:
    """Every row proofed exactly once, and none of them left behind: the task
    path goes on to the mailing stage (here without a printer to reach, so the
    rows wait in SendingStaged)."""
    later = {S.PROOFED, S.SENDING_STAGED, S.SENT}
    return proofed_once_each(campaign) and set(statuses(campaign)) <= later


# ---------------------------------------------------------------- the happy path
def test_a_batch_proofs_mints_once_and_stores_both_sides():
    campaign, rows = staged_campaign(5)
    renderer = CountingRenderer()
    report = campaign_proof(campaign=campaign, actor=ACTOR, renderer=renderer)
    assert report.moved[S.PROOFED] == 5
    for r in rows:
        r.refresh_from_db()
        assert r.status == S.PROOFED
        assert r.discount_code == discount_code_for(campaign, r.pk)
        assert r.proof_url.endswith("-front.png")
        assert r.proof_back_url.endswith("-back.png")
        assert (r.claim_token, r.lease_until) == (None, None)
    assert LocalDiscountCode.objects.count() == 5
    assert set(renderer.renders.values()) == {1}
    # The job carries the merge data and the address block where the printer prints it.
    job = next(j for j in renderer.jobs if j.recipient_id == rows[0].pk)
    assert job.merge["first_name"] == rows[0].first_name
    assert job.merge["discount_code"] == discount_code_for(campaign, rows[0].pk)
    assert job.address_lines[-1] == "Springfield, IL 62701"


# ---------------------------------------------------------------- billing fails closed
def test_an_unbillable_org_gets_zero_renders_zero_codes_and_the_spec_message():
    campaign, rows = staged_campaign(4, subscription_active=False)
    renderer = CountingRenderer()
    report = campaign_proof(campaign=campaign, actor=ACTOR, renderer=renderer)
    assert report.billing_problem == "no active subscription"
    assert not renderer.renders
    assert LocalDiscountCode.objects.count() == 0
    assert set(campaign.recipients.values_list("status", "error_message", "error_detail")) == {
        (S.ERROR, ErrorMessages.BILLING_NOT_READY, "no active subscription")
    }
    assert (
        rows[0].__class__.objects.get(pk=rows[0].pk).why == "Org billing is not ready to send: no active subscription"
    )


def test_price_drift_fails_closed():
    campaign, _ = staged_campaign(2, billing_price_id="price_old_2019")
    campaign_proof(campaign=campaign, actor=ACTOR, renderer=CountingRenderer())
    assert statuses(campaign) == {S.ERROR: 2}
    assert campaign.recipients.first().error_detail.startswith(PRICE_DRIFT)


def test_a_billing_service_that_cannot_be_asked_fails_closed(settings):
    settings.BILLING = {
        **settings.BILLING,
        "backend": "stripe",
        "api_key": "sk_test_x",
        "base_url": "http://127.0.0.1:9",
    }
    campaign, _ = staged_campaign(3)
    renderer = CountingRenderer()
    campaign_proof(campaign=campaign, actor=ACTOR, renderer=renderer)
    assert not renderer.renders
    assert LocalDiscountCode.objects.count() == 0
    assert statuses(campaign) == {S.ERROR: 3}
    assert campaign.recipients.first().error_detail.startswith("billing could not be checked")


# ---------------------------------------------------------------- the approval gate
def test_only_samples_are_proofed_until_a_person_approves(admin_user):
    campaign, _ = staged_campaign(10, approved=False)
    renderer = CountingRenderer()
    assert campaign_proof(campaign=campaign, actor=ACTOR, renderer=renderer).moved[S.PROOFED] == SAMPLE_SIZE
    again = campaign_proof(campaign=campaign, actor=ACTOR, renderer=renderer)
    assert again.waiting_for_approval
    assert again.claimed == 0
    assert statuses(campaign) == {S.PROOFED: SAMPLE_SIZE, S.PROOFING_STAGED: 10 - SAMPLE_SIZE}
    approval = campaign_approve_proofs(campaign=campaign, user=admin_user)
    assert (approval.approved_by, len(approval.sample_recipient_ids)) == (admin_user, SAMPLE_SIZE)
    assert campaign_approve_proofs(campaign=campaign, user=admin_user) == approval  # twice is one approval
    campaign_proof(campaign=campaign, actor=ACTOR, renderer=renderer)
    assert statuses(campaign) == {S.PROOFED: 10}
    assert sum(renderer.renders.values()) == 10


def test_a_design_that_fails_every_proof_fails_the_samples_not_the_audience():
    """A broken design (a cut-short picture) failed 3 rows, took 3 more, and so
    on: the whole audience was in Error before anyone approved.  Failed samples
    count against the samples; retrying them (the design fixed) makes room."""
    from django.db.models import Q

    from campaigns.pipeline.runner import _proof_due

    campaign, _ = staged_campaign(10, approved=False)
    broken = CountingRenderer(fail=ProofError("the front background is not an image", cause="creative", permanent=True))
    for _ in range(3):
        campaign_proof(campaign=campaign, actor=ACTOR, renderer=broken)
    assert statuses(campaign) == {S.ERROR: SAMPLE_SIZE, S.PROOFING_STAGED: 10 - SAMPLE_SIZE}
    assert campaign_proof(campaign=campaign, actor=ACTOR, renderer=broken).waiting_for_approval
    assert _proof_due(campaign, timezone.now()) == 0  # the runner sees nothing to do either
    failed = CampaignRecipient.objects.filter(Q(campaign=campaign) & Q(status=S.ERROR))
    recipients_retry_proofing(queryset=failed, actor=ACTOR)
    campaign_proof(campaign=campaign, actor=ACTOR, renderer=CountingRenderer())
    assert statuses(campaign) == {S.PROOFED: SAMPLE_SIZE, S.PROOFING_STAGED: 10 - SAMPLE_SIZE}


def test_no_samples_no_approval(admin_user):
    campaign, _ = staged_campaign(2, approved=False)
    with pytest.raises(ApprovalError, match="no sample proofs"):
        campaign_approve_proofs(campaign=campaign, user=admin_user)


def test_changing_the_design_withdraws_the_approval_and_makes_the_proofs_again(admin_user):
    template = ProofTemplate.objects.create(name="Winter")
    campaign, _ = staged_campaign(6, approved=False)
    campaign.proof_template = template
    campaign.save()
    renderer = CountingRenderer()
    campaign_proof(campaign=campaign, actor=ACTOR, renderer=renderer)
    campaign_approve_proofs(campaign=campaign, user=admin_user)
    campaign_proof(campaign=campaign, actor=ACTOR, renderer=renderer)
    assert statuses(campaign) == {S.PROOFED: 6}
    codes = dict(campaign.recipients.values_list("pk", "discount_code"))

    template.headline = "Welcome back, {first_name}"
    template.save()
    assert template.version == 2
    campaign.refresh_from_db()
    assert campaign_approval(campaign) is None
    report = campaign_proof(campaign=campaign, actor=ACTOR, renderer=renderer)
    assert report.moved["reproof"] == 6
    # Samples of the new version only, then the gate holds again.
    assert statuses(campaign) == {S.PROOFED: SAMPLE_SIZE, S.PROOFING_STAGED: 6 - SAMPLE_SIZE}
    assert set(campaign.recipients.filter(status=S.PROOFED).values_list("proof_version", flat=True)) == {
        f"t{template.pk}.v2.4x6.code"
    }
    # Codes were kept: never minted twice.
    assert dict(campaign.recipients.values_list("pk", "discount_code")) == codes
    assert LocalDiscountCode.objects.count() == 6


def test_saving_a_template_unchanged_keeps_its_version():
    template = ProofTemplate.objects.create(name="Same")
    template.save()
    template.name = "Renamed"  # the name is not part of the design
    template.save()
    assert template.version == 1


# ---------------------------------------------------------------- crashes and duplicates
def test_crash_after_the_claim_before_the_render_is_recovered_by_the_sweeper():
    campaign, _ = staged_campaign(4)
    claim = recipients_claim(
        campaign=campaign, method="start_proofing", limit=10, lease=timedelta(minutes=10), actor=ACTOR
    )
    assert len(claim) == 4  # ... and the worker dies here.
    renderer = CountingRenderer()
    assert (
        campaign_proof(campaign=campaign, actor=ACTOR, renderer=renderer).claimed == 0
    )  # leased: nobody else takes them
    assert pipeline_sweep(actor=ACTOR)[S.PROOFING] == 0  # not expired yet
    assert pipeline_sweep(actor=ACTOR, now=timezone.now() + timedelta(minutes=11))[S.PROOFING] == 4
    campaign_proof(campaign=campaign, actor=ACTOR, renderer=renderer)
    assert statuses(campaign) == {S.PROOFED: 4}
    assert set(renderer.renders.values()) == {1}
    assert proofed_once_each(campaign)


def test_crash_after_the_code_was_minted_before_our_commit_mints_no_second_code():
    campaign, _ = staged_campaign(3)
    claim = recipients_claim(
        campaign=campaign, method="start_proofing", limit=10, lease=timedelta(minutes=10), actor=ACTOR
    )
    client = LocalDiscountClient()
    minted = {
        pk: client.mint(campaign=campaign, recipient_id=pk, code=discount_code_for(campaign, pk)) for pk in claim.ids
    }
    # ... the worker dies before recording anything: the rows have no code.
    assert not campaign.recipients.exclude(discount_code="").exists()
    pipeline_sweep(actor=ACTOR, now=timezone.now() + timedelta(minutes=11))
    campaign_proof(campaign=campaign, actor=ACTOR, renderer=CountingRenderer())
    assert dict(campaign.recipients.values_list("pk", "discount_code")) == minted
    assert LocalDiscountCode.objects.count() == 3


def test_a_worker_that_outlived_its_lease_writes_nothing():
    campaign, _ = staged_campaign(2)
    slow = CountingRenderer()
    taken_over = {}

    class SlowRenderer(CountingRenderer):
        def render(self, job: ProofJob) -> RenderedProof:
            if not taken_over:  # while the first worker renders, its lease runs out and another takes over
                taken_over["done"] = True
                pipeline_sweep(actor=ACTOR, now=timezone.now() + timedelta(hours=2))
                campaign_proof(campaign=campaign, actor=ACTOR, renderer=slow, concurrency=1)
            return super().render(job)

    report = campaign_proof(campaign=campaign, actor=ACTOR, renderer=SlowRenderer(), concurrency=1)
    assert report.moved["lost_claim"] == 2
    assert report.moved[S.PROOFED] == 0
    assert statuses(campaign) == {S.PROOFED: 2}
    assert proofed_once_each(campaign)


def test_duplicate_delivery_of_the_same_task_does_the_work_once(settings):
    settings.PROOFING = {**settings.PROOFING, "backend": "fast"}
    campaign, _ = staged_campaign(7)
    campaign_run_task(campaign.pk)
    campaign_run_task(campaign.pk)
    assert past_proofing(campaign)
    assert proofed_once_each(campaign)
    assert LocalDiscountCode.objects.count() == 7


@pytest.mark.django_db(transaction=True)
def test_two_workers_at_once_never_proof_one_recipient_twice():
    campaign, _ = staged_campaign(30)
    renderer = CountingRenderer()

    def worker() -> int:
        total = 0
        while True:
            report = campaign_proof(campaign=campaign, actor=ACTOR, renderer=renderer, batch_size=4, concurrency=1)
            total += report.moved[S.PROOFED]
            if not report.claimed:
                return total

    done = race([worker, worker])
    assert sum(done) == 30
    assert set(renderer.renders.values()) == {1}
    assert proofed_once_each(campaign)


# ---------------------------------------------------------------- the doorbell
def test_a_lost_enqueue_is_recovered_by_the_tick(monkeypatch, settings):
    settings.PROOFING = {**settings.PROOFING, "backend": "fast"}
    campaign, _ = staged_campaign(3)
    lost: list[int] = []
    monkeypatch.setattr(doorbell, "enqueue", lost.append)  # "enqueued", never delivered
    assert doorbell.campaign_ring(campaign.pk)
    assert lost == [campaign.pk]
    assert statuses(campaign) == {S.PROOFING_STAGED: 3}
    monkeypatch.undo()
    # The tick does not ring again while the ring is fresh ...
    assert pipeline_tick_task() == 0
    # ... and does once its lease has passed (tests run tasks inline: sync mode).
    type(campaign).objects.filter(pk=campaign.pk).update(doorbell_rung_at=timezone.now() - timedelta(minutes=6))
    assert pipeline_tick_task() == 1
    assert past_proofing(campaign)


def test_an_enqueue_that_keeps_failing_becomes_the_spec_error_and_the_retry_recovers(
    monkeypatch, settings, django_capture_on_commit_callbacks
):
    settings.PROOFING = {**settings.PROOFING, "backend": "fast"}
    campaign, _ = staged_campaign(3)

    def broker_down(campaign_id: int) -> None:
        raise ConnectionError("redis is down")

    monkeypatch.setattr(doorbell, "enqueue", broker_down)
    for _ in range(doorbell.RING_ATTEMPTS - 1):
        assert not doorbell.campaign_ring(campaign.pk)
    assert statuses(campaign) == {S.PROOFING_STAGED: 3}  # a blip is only retried
    assert not doorbell.campaign_ring(campaign.pk)
    assert set(campaign.recipients.values_list("status", "error_message")) == {
        (S.ERROR, ErrorMessages.FAILED_SUBMISSION_TO_PROOFING_QUEUE)
    }
    monkeypatch.undo()
    with django_capture_on_commit_callbacks(execute=True):
        report = recipients_retry_proofing(queryset=campaign.recipients.all(), actor=ACTOR)
    assert report.retried == 3
    # The retry rang the doorbell after commit: the rows are proofed.
    assert past_proofing(campaign)


# ---------------------------------------------------------------- failures
def test_a_transient_failure_backs_off_then_becomes_failed_to_make_proof():
    campaign, (r,) = staged_campaign(1)
    renderer = CountingRenderer(fail=ProofError("Pixelixe answered HTTP 503", cause="proof", permanent=False))
    report = campaign_proof(campaign=campaign, actor=ACTOR, renderer=renderer)
    assert report.moved["retry_later"] == 1
    r.refresh_from_db()
    assert (r.status, r.attempt) == (S.PROOFING_STAGED, 1)
    assert r.lease_until > timezone.now()  # not before the backoff
    assert campaign_proof(campaign=campaign, actor=ACTOR, renderer=renderer).claimed == 0
    for _ in range(2):
        type(r).objects.filter(pk=r.pk).update(lease_until=timezone.now() - timedelta(seconds=1))
        campaign_proof(campaign=campaign, actor=ACTOR, renderer=renderer)
    r.refresh_from_db()
    assert (r.status, r.error_message, r.error_detail) == (
        S.ERROR,
        ErrorMessages.FAILED_TO_MAKE_PROOF,
        "Pixelixe answered HTTP 503",
    )
    assert renderer.renders[r.pk] == 3
    # The code minted on the first try is kept on the row.
    assert r.discount_code == discount_code_for(campaign, r.pk)


def test_a_creative_problem_is_could_not_generate_creative_at_once():
    campaign, (r,) = staged_campaign(1)
    renderer = CountingRenderer(fail=ProofError("the headline uses {nickname}", cause="creative", permanent=True))
    campaign_proof(campaign=campaign, actor=ACTOR, renderer=renderer)
    r.refresh_from_db()
    assert (r.status, r.error_message) == (S.ERROR, ErrorMessages.COULD_NOT_GENERATE_CREATIVE)


def test_a_discount_failure_is_failed_to_apply_discount_code_and_nothing_is_rendered():
    class Refusing:
        name = "refusing"

        def mint(self, **kwargs: object) -> str:
            raise DiscountError("the shop refused the code", permanent=True)

    campaign, (r,) = staged_campaign(1)
    renderer = CountingRenderer()
    campaign_proof(campaign=campaign, actor=ACTOR, renderer=renderer, discounts=Refusing())
    r.refresh_from_db()
    assert (r.status, r.error_message) == (S.ERROR, ErrorMessages.FAILED_TO_APPLY_DISCOUNT_CODE)
    assert not renderer.renders


def test_a_renderer_bug_is_an_error_row_not_a_dead_batch():
    class Buggy(CountingRenderer):
        def render(self, job: ProofJob) -> RenderedProof:
            if job.recipient_id == first:
                raise ZeroDivisionError
            return super().render(job)

    campaign, rows = staged_campaign(3)
    first = rows[0].pk
    campaign_proof(campaign=campaign, actor=ACTOR, renderer=Buggy())
    assert statuses(campaign) == {S.PROOFED: 2, S.ERROR: 1}
    assert type(rows[0]).objects.get(pk=first).error_detail == "unexpected error: ZeroDivisionError"


# ---------------------------------------------------------------- ops retry and pause
def test_ops_retry_keeps_a_valid_code_and_clears_a_stale_one():
    campaign, (keep, stale, other) = staged_campaign(3)
    type(keep).objects.filter(pk=keep.pk).update(
        status=S.ERROR,
        error_message=ErrorMessages.FAILED_TO_MAKE_PROOF,
        discount_code=discount_code_for(campaign, keep.pk),
    )
    type(keep).objects.filter(pk=stale.pk).update(
        status=S.ERROR, error_message=ErrorMessages.FAILED_TO_MAKE_PROOF, discount_code="OLDPREFIX-AAAA"
    )
    type(keep).objects.filter(pk=other.pk).update(
        status=S.ERROR, error_message=ErrorMessages.FAILED_TO_MAKE_MAIL_PIECE, proof_url="x.png"
    )
    report = recipients_retry_proofing(queryset=campaign.recipients.all(), actor=ACTOR)
    assert report.retried == 2
    assert report.summary() == "2 sent back to proofing; 1 not eligible: 1 not a proofing error"
    assert type(keep).objects.get(pk=keep.pk).discount_code == discount_code_for(campaign, keep.pk)
    assert type(keep).objects.get(pk=stale.pk).discount_code == ""
    assert type(keep).objects.get(pk=keep.pk).error_message == ""
    # Twice is safe.
    assert recipients_retry_proofing(queryset=campaign.recipients.all(), actor=ACTOR).retried == 0


def test_a_paused_campaign_claims_nothing():
    campaign, _ = staged_campaign(3)
    campaign.paused = True
    campaign.save()
    renderer = CountingRenderer()
    report = campaign_proof(campaign=campaign, actor=ACTOR, renderer=renderer)
    assert report.paused
    assert not renderer.renders
    assert statuses(campaign) == {S.PROOFING_STAGED: 3}


# ---------------------------------------------------------------- Pixelixe through the stage
@pytest.fixture
def pixelixe_settings(settings):
    from campaigns.proofing.pixelixe_stub import PixelixeHandler
    from printers.simulator import Simulator

    sim = Simulator(handlers={"pixelixe": PixelixeHandler}, secrets={"pixelixe": "pxl-key"}).start()
    settings.PROOFING = {
        **settings.PROOFING,
        "backend": "pixelixe",
        "api_key": "pxl-key",
        "base_url": f"{sim.base_url}/pixelixe/api",
        "timeout_s": 0.5,
    }
    try:
        yield sim
    finally:
        sim.stop()


def pixelixe_campaign(n: int):
    template = ProofTemplate.objects.create(
        name="Pixelixe", pixelixe_front_uid="demo-front-4x6", pixelixe_back_uid="demo-back-4x6"
    )
    campaign, rows = staged_campaign(n, approved=False)
    campaign.proof_template = template
    campaign.save()
    approve(campaign)
    return campaign, rows


def test_pixelixe_5xx_and_timeout_are_retried_then_the_proof_is_made(pixelixe_settings):
    from printers.simulator import Fault

    campaign, (r,) = pixelixe_campaign(1)
    pixelixe_settings.inject("pixelixe", 503)
    assert campaign_proof(campaign=campaign, actor=ACTOR).moved["retry_later"] == 1
    type(r).objects.filter(pk=r.pk).update(lease_until=timezone.now() - timedelta(seconds=1))
    pixelixe_settings.inject("pixelixe", Fault.timeout_after_create(1.0, method="POST"))
    assert campaign_proof(campaign=campaign, actor=ACTOR).moved["retry_later"] == 1
    r.refresh_from_db()
    assert (r.status, r.attempt) == (S.PROOFING_STAGED, 2)
    type(r).objects.filter(pk=r.pk).update(lease_until=timezone.now() - timedelta(seconds=1))
    assert campaign_proof(campaign=campaign, actor=ACTOR).moved[S.PROOFED] == 1
    r.refresh_from_db()
    from django.core.files.storage import default_storage
    from PIL import Image

    with default_storage.open(r.proof_url) as f, Image.open(f) as image:
        assert image.size == (1875, 1275)  # copied into our storage, at print size


def test_pixelixe_down_for_every_attempt_is_failed_to_make_proof(pixelixe_settings):
    campaign, (r,) = pixelixe_campaign(1)
    for _ in range(3):
        pixelixe_settings.inject("pixelixe", 500)
        type(r).objects.filter(pk=r.pk).update(lease_until=None)
        campaign_proof(campaign=campaign, actor=ACTOR)
    r.refresh_from_db()
    assert (r.status, r.error_message) == (S.ERROR, ErrorMessages.FAILED_TO_MAKE_PROOF)
    assert "500" in r.error_detail
    assert "pxl-key" not in r.error_detail


def test_samples_in_flight_count_against_the_sample_size():
    campaign, _ = staged_campaign(10, approved=False)
    held = recipients_claim(campaign=campaign, method="start_proofing", limit=2, lease=timedelta(hours=1), actor=ACTOR)
    assert len(held) == 2  # another worker is rendering two samples right now
    report = campaign_proof(campaign=campaign, actor=ACTOR, renderer=CountingRenderer())
    assert (report.claimed, report.moved[S.PROOFED]) == (SAMPLE_SIZE - 2, SAMPLE_SIZE - 2)
    assert campaign_proof(campaign=campaign, actor=ACTOR, renderer=CountingRenderer()).waiting_for_approval


def test_the_lease_outlasts_a_batch_of_slow_network_renders():
    class SlowNetwork(CountingRenderer):
        timeout = 60.0

    campaign, _ = staged_campaign(1)  # one row: rendered in this thread, which may read the database
    seen = {}

    class Peeking(SlowNetwork):
        def render(self, job: ProofJob) -> RenderedProof:
            seen.setdefault("lease", CampaignRecipient.objects.get(pk=job.recipient_id).lease_until)
            return super().render(job)

    before = timezone.now()
    campaign_proof(campaign=campaign, actor=ACTOR, renderer=Peeking(), batch_size=100, concurrency=4)
    # 100 rows over 4 threads, each up to 60 s: the lease covers 25 x 60 s, twice.
    assert seen["lease"] - before >= timedelta(minutes=49)
    local = {}

    class PeekingLocal(CountingRenderer):
        def render(self, job: ProofJob) -> RenderedProof:
            local.setdefault("lease", CampaignRecipient.objects.get(pk=job.recipient_id).lease_until)
            return super().render(job)

    campaign2, _ = staged_campaign(1)
    before = timezone.now()
    campaign_proof(campaign=campaign2, actor=ACTOR, renderer=PeekingLocal(), batch_size=100, concurrency=4)
    assert timedelta(minutes=9) < local["lease"] - before < timedelta(minutes=11)


@pytest.mark.parametrize(
    ("version", "words"),
    [
        ("builtin.v1.4x6.code", "the built-in design, version 1, 4x6 card with a discount code"),
        ("t3.v2.6x9", "template #3, version 2, 6x9 card"),
        ("something else", "something else"),
    ],
)
def test_a_design_version_in_words(version, words):
    from campaigns.proofing.design import design_words

    assert design_words(version) == words


def test_the_approval_panel_and_sample_page_name_the_design_in_words(admin_client):
    from django.urls import reverse

    campaign, _ = staged_campaign(1)
    page = admin_client.get(reverse("admin:campaigns_campaign_change", args=[campaign.pk])).content.decode()
    samples = admin_client.get(reverse("admin:campaigns_campaign_proofs", args=[campaign.pk])).content.decode()
    for text in (page, samples):
        assert "builtin.v" not in text
        assert "the built-in design, version" in text
