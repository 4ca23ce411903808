"""A Hypothesis state machine over the proofing stage of one small campaign.

The rules are what happens to a campaign in production, in any order: proofing
batches, the same task delivered twice, workers that crash at the two points
that matter (after the claim, and after the shop minted a code but before our
commit), the clock running past a lease and the sweeper, a person approving
the samples, renderer failures (transient and permanent), ops retrying the
Error rows, pause and resume.  After every step the invariants below must
hold; they are the promises of docs/reliability.md for this stage.

Time.  ``pipeline_sweep`` takes ``now``, so the sweeper runs on a fake clock
that only moves forward (``self.offset`` ahead of the real one).  The claim
inside ``campaign_proof`` and the backoff ``requeue_proofing`` stamps read the
real clock and take no ``now``: when the fake clock passes a backoff, the
test moves that row's ``lease_until`` (its "not before") into the real past
instead (see ``advance_clock_and_sweep``).

While the campaign is paused only the rules that would claim (and resume)
are enabled: the pause is there to be tested, and an example should not
spend most of its steps in it.

Renders are counted by a fake renderer (it draws nothing, like the fast
backend) that also records the discount code printed on each proof.  Each
example builds its own organization and campaign, and every check is scoped
to that campaign, so the examples share one transactional test database.
"""

from __future__ import annotations

import itertools
import threading
from collections import Counter, defaultdict
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.utils import timezone
from hypothesis import HealthCheck
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from campaigns.claims import recipients_claim
from campaigns.discounts.local import LocalDiscountClient
from campaigns.discounts.service import recipient_discount_code
from campaigns.models import (
    Campaign,
    CampaignRecipient,
    ErrorMessages,
    LocalDiscountCode,
    RecipientTransition,
)
from campaigns.pipeline import doorbell, runner
from campaigns.pipeline.sweeper import pipeline_sweep
from campaigns.proofing import service
from campaigns.proofing.base import ProofError, ProofJob, RenderedProof
from campaigns.proofing.design import SAMPLE_SIZE, ApprovalError, campaign_approve_proofs, campaign_design
from campaigns.proofing.retry import recipients_retry_proofing
from campaigns.proofing.service import LEASE, campaign_proof
from campaigns.services import recipients_record_created
from campaigns.tasks import campaign_run_task
from campaigns.tests.factories import CampaignFactory, CampaignRecipientFactory, OrganizationFactory
from common.fsm import Actor, edges

S = CampaignRecipient.Status
RECIPIENTS = 10
BATCH = st.integers(1, 4)
FSM_EDGES = edges(CampaignRecipient)


class WorkerCrash(BaseException):
    """The process dies here: nothing after this line of the worker runs.
    A BaseException, so no ``except Exception`` of the code under test
    turns it into an outcome."""


class CountingRenderer:
    """Counts renders per (recipient, design version), succeeds or fails as
    the machine tells it, and remembers the code each proof shows."""

    name = "counting"

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.mode = ""  # "", "transient", "permanent", "creative" or "crash"
        self.ok: Counter[tuple[int, str]] = Counter()
        self.tried: Counter[tuple[int, str]] = Counter()
        self.codes: dict[tuple[int, str], str] = {}

    def render(self, job: ProofJob) -> RenderedProof:
        key = (job.recipient_id, job.design.version)
        with self.lock:
            self.tried[key] += 1
        if self.mode == "crash":
            raise WorkerCrash
        if self.mode == "transient":
            raise ProofError("the proof service answered 503", cause="proof", permanent=False, retry_after=5)
        if self.mode == "permanent":
            raise ProofError("the proof service refused the job", cause="proof", permanent=True)
        if self.mode == "creative":
            raise ProofError("the template has no such field", cause="creative", permanent=True)
        with self.lock:
            self.ok[key] += 1
            self.codes[key] = job.merge["discount_code"]
        return RenderedProof(front=b"", back=b"")


class CrashingDiscounts:
    """A shop client whose worker dies on its first mint."""

    name = "crashing"
    uses_database = True

    def mint(self, *, campaign: Campaign, recipient_id: int, code: str) -> str:
        raise WorkerCrash


# One renderer for the whole run (``get_proof_renderer`` is patched to it so
# the task path draws with it too); each example starts it afresh.
RENDERER = CountingRenderer()
# What the examples got to (across the whole run): the test fails if the
# machine never reached the states the invariants are about.
SEEN: Counter[str] = Counter()


class ProofingMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        RENDERER.reset()
        self.renderer = RENDERER
        org = OrganizationFactory(
            billing_subscription_item_id="si_stateful", billing_price_id=settings.BILLING["price_id"]
        )
        self.campaign = CampaignFactory(
            organization=org, discount_enabled=True, discount_prefix="HYP", discount_value="10%"
        )
        rows = CampaignRecipientFactory.create_batch(RECIPIENTS, campaign=self.campaign, status=S.PROOFING_STAGED)
        recipients_record_created(recipients=rows, actor=Actor("test:import"))
        self.ids = sorted(r.pk for r in rows)
        self.version = campaign_design(self.campaign).version
        self.offset = timedelta(0)  # the fake clock, ahead of the real one
        self.failure = ""  # what the renderer does during the next proofing rule
        self.paused = False
        self.approved = False
        self.claims_at_pause = 0
        self.snapshot = self._statuses()
        self.history_mark = self._last_history_id()
        self.minted_in_a_crash: set[int] = set()

    # ---------------------------------------------------------------- helpers

    def _recipients(self) -> Any:
        return CampaignRecipient.objects.filter(campaign=self.campaign)

    def _statuses(self) -> dict[int, str]:
        return dict(self._recipients().values_list("pk", "status"))

    def _history(self) -> Any:
        return RecipientTransition.objects.filter(recipient__campaign=self.campaign)

    def _last_history_id(self) -> int:
        return self._history().order_by("-id").values_list("id", flat=True).first() or 0

    def _claims(self) -> int:
        return self._history().filter(from_status=S.PROOFING_STAGED, to_status=S.PROOFING).count()

    def _fake_now(self) -> Any:
        return timezone.now() + self.offset

    def _proof(self, batch_size: int, **kwargs: Any) -> service.ProofReport:
        """One ``campaign_proof``, the renderer failing as asked (until a
        batch actually renders)."""
        report = self._with_failure(
            lambda: campaign_proof(
                campaign=self.campaign,
                actor=Actor("test:batch"),
                batch_size=batch_size,
                renderer=self.renderer,
                concurrency=2,
                **kwargs,
            )
        )
        if self.paused:
            assert report.paused
            assert report.claimed == 0
            SEEN["a batch found the campaign paused"] += 1
        if report.waiting_for_approval:
            SEEN["a batch waited for approval"] += 1
        return report

    def _with_failure(self, run: Any) -> Any:
        before = sum(self.renderer.tried.values())
        self.renderer.mode = self.failure
        try:
            return run()
        finally:
            self.renderer.mode = ""
            if sum(self.renderer.tried.values()) > before:
                self.failure = ""

    # ------------------------------------------------------------------ rules

    @rule(batch_size=BATCH)
    def run_a_batch(self, batch_size: int) -> None:
        self._proof(batch_size)

    @rule(batch_size=BATCH)
    def duplicate_delivery(self, batch_size: int) -> None:
        """The same batch twice back to back (a redelivered task); the second
        finds only what is still staged."""
        self._proof(batch_size)
        self._proof(batch_size)

    @rule()
    def the_task_is_delivered_twice(self) -> None:
        """django-q2's task, twice: the whole runner, not only the stage."""
        self._with_failure(lambda: campaign_run_task(self.campaign.pk))
        self._with_failure(lambda: campaign_run_task(self.campaign.pk))

    @rule(
        where=st.sampled_from(
            ["after the claim", "after the mint", "in the batch, at the mint", "in the batch, at the render"]
        ),
        limit=BATCH,
    )
    def a_worker_crashes(self, where: str, limit: int) -> None:
        """A worker dies and never finishes its batch:

        - after the claim: it claimed and died before minting or rendering;
        - after the mint: the shop minted the codes, it died before our commit
          stored them on the rows;
        - in the batch: ``campaign_proof`` itself dies, at its first mint
          (claimed, nothing minted) or in the render (codes minted, nothing
          recorded).
        """
        if where.startswith("in the batch"):
            pending, self.failure = self.failure, "crash"
            try:
                self._proof(limit, discounts=CrashingDiscounts() if where.endswith("mint") else None)
            except WorkerCrash:
                SEEN["a worker crashed inside its batch"] += 1
            self.failure = pending
            return
        if self.paused:  # the worker that crashed had read the campaign before the pause
            return
        claim = recipients_claim(
            campaign=self.campaign, method="start_proofing", limit=limit, lease=LEASE, actor=Actor("test:crashed")
        )
        if where == "after the mint":
            client = LocalDiscountClient()
            for r in self._recipients().filter(pk__in=claim.ids, discount_code=""):
                recipient_discount_code(campaign=self.campaign, recipient_id=r.pk, existing_code="", client=client)
                self.minted_in_a_crash.add(r.pk)

    @precondition(lambda self: not self.paused)
    @rule()
    def advance_clock_and_sweep(self) -> None:
        """A sweep on the real clock first: it moves no claim whose lease
        still runs.  Then past every lease: the sweeper returns abandoned
        claims to the queue.  Backoffs the fake clock has passed are moved
        into the real past, since the claim reads the real clock."""
        live = self._recipients().filter(status=S.PROOFING, lease_until__gt=timezone.now())
        held = set(live.values_list("pk", flat=True))
        pipeline_sweep(actor=Actor("test:sweeper"), now=timezone.now(), campaign_ids=[self.campaign.pk])
        assert held <= set(self._recipients().filter(status=S.PROOFING).values_list("pk", flat=True))
        self.offset += LEASE + timedelta(minutes=1)
        now = self._fake_now()
        pipeline_sweep(actor=Actor("test:sweeper"), now=now, campaign_ids=[self.campaign.pk])
        assert not self._recipients().filter(status=S.PROOFING, lease_until__lt=now).exists()
        self._recipients().filter(status=S.PROOFING_STAGED, lease_until__lte=now).update(
            lease_until=timezone.now() - timedelta(seconds=1)
        )

    @precondition(lambda self: not self.approved and not self.paused)
    @rule()
    def approve_the_samples(self) -> None:
        has_samples = self._recipients().filter(proof_version=self.version).exists()
        try:
            approval = campaign_approve_proofs(campaign=self.campaign, user=None)
        except ApprovalError:
            assert not has_samples
            return
        assert has_samples
        assert approval.design_version == self.version
        assert 0 < len(approval.sample_recipient_ids) <= SAMPLE_SIZE
        self.approved = True

    @precondition(lambda self: not self.paused)
    @rule(kind=st.sampled_from(["transient", "permanent", "creative"]))
    def the_renderer_fails_next_time(self, kind: str) -> None:
        """The next batch that renders fails, every row of it, this way."""
        self.failure = kind

    @precondition(lambda self: not self.paused)
    @rule()
    def ops_retry(self) -> None:
        errors = self._recipients().filter(status=S.ERROR).count()
        report = recipients_retry_proofing(queryset=self._recipients(), actor=Actor("test:ops"))
        # Every Error of this machine is a proofing error, so every one goes back.
        assert report.retried == errors
        assert not self._recipients().filter(status=S.ERROR).exists()

    @precondition(lambda self: not self.paused)
    @rule()
    def pause(self) -> None:
        Campaign.objects.filter(pk=self.campaign.pk).update(paused=True)
        self.paused = True
        self.claims_at_pause = self._claims()

    @precondition(lambda self: self.paused)
    @rule()
    def resume(self) -> None:
        Campaign.objects.filter(pk=self.campaign.pk).update(paused=False)
        self.paused = False

    @precondition(lambda self: self.approved and not self.paused)
    @rule()
    def drain(self) -> None:
        """Liveness: once approved, sweeping, retrying and running batches
        brings every recipient to Proofed."""
        self.failure = ""
        self.advance_clock_and_sweep()
        recipients_retry_proofing(queryset=self._recipients(), actor=Actor("test:ops"))
        for _ in range(RECIPIENTS + 1):
            if not self._proof(RECIPIENTS).progressed:
                break
        assert set(self._statuses().values()) == {S.PROOFED}
        SEEN["drained"] += 1

    # ------------------------------------------------------------- invariants

    @invariant()
    def only_edges_of_the_machine_were_taken(self) -> None:
        for from_status, to_status in self._history().values_list("from_status", "to_status"):
            assert (from_status, to_status) in FSM_EDGES or (from_status == "" and to_status == S.PROOFING_STAGED)

    @invariant()
    def the_history_is_one_row_per_status_change(self) -> None:
        """Each recipient's history is an unbroken chain from its creation to
        its status, and the rows written since the last step lead from the
        status it had then to the one it has now."""
        statuses = self._statuses()
        chains: defaultdict[int, list[tuple[int, str, str]]] = defaultdict(list)
        for row in self._history().order_by("id").values_list("recipient_id", "id", "from_status", "to_status"):
            chains[row[0]].append(row[1:])
        for pk, status in statuses.items():
            chain = chains[pk]
            assert chain[0][1:] == ("", S.PROOFING_STAGED), (pk, chain)
            for (_, _, before), (_, after_from, _) in itertools.pairwise(chain):
                assert after_from == before, (pk, chain)
            assert chain[-1][2] == status, (pk, chain, status)
            new = [row for row in chain if row[0] > self.history_mark]
            if new:
                assert new[0][1] == self.snapshot[pk], (pk, self.snapshot[pk], new)
            else:
                assert status == self.snapshot[pk], (pk, self.snapshot[pk], status)
        self.snapshot = statuses
        self.history_mark = self._last_history_id()

    @invariant()
    def one_code_per_recipient_and_the_row_holds_it(self) -> None:
        minted: defaultdict[int, list[str]] = defaultdict(list)
        for recipient_id, code in LocalDiscountCode.objects.filter(campaign=self.campaign).values_list(
            "recipient_id", "code"
        ):
            minted[recipient_id].append(code)
        assert set(minted) <= set(self.ids)
        for pk, code in self._recipients().values_list("pk", "discount_code"):
            assert len(minted[pk]) <= 1, (pk, minted[pk])
            if code:
                assert minted[pk] == [code], (pk, code, minted[pk])
                if pk in self.minted_in_a_crash:
                    SEEN["a code minted before a crash was found again"] += 1

    @invariant()
    def a_proofed_row_has_its_proof_and_was_rendered_once(self) -> None:
        rows = self._recipients().values_list("pk", "status", "proof_version", "discount_code")
        for pk, status, proof_version, code in rows:
            if status == S.PROOFED:
                assert proof_version == self.version, (pk, proof_version)
                assert code, f"recipient {pk} was proofed without a discount code"
                assert self.renderer.ok[(pk, self.version)] == 1, (pk, self.renderer.ok)
                assert self.renderer.codes[(pk, self.version)] == code
            else:
                assert self.renderer.ok[(pk, self.version)] == 0, (pk, status, self.renderer.ok)

    @invariant()
    def nothing_past_the_samples_before_approval(self) -> None:
        if self.approved:
            return
        assert self._recipients().filter(status=S.PROOFED).count() <= SAMPLE_SIZE
        assert self._recipients().exclude(proof_version="").count() <= SAMPLE_SIZE
        assert sum(self.renderer.ok.values()) <= SAMPLE_SIZE

    @invariant()
    def a_paused_campaign_claims_nothing(self) -> None:
        if self.paused:
            assert self._claims() == self.claims_at_pause

    @invariant()
    def only_working_rows_hold_a_claim(self) -> None:
        for pk, status, token, lease in self._recipients().values_list("pk", "status", "claim_token", "lease_until"):
            if status == S.PROOFING:
                assert token is not None, pk
                assert lease is not None, pk
            else:
                assert token is None, (pk, status)


def check(machine: ProofingMachine) -> None:
    """Every invariant, as Hypothesis checks them after each step."""
    for name in dir(ProofingMachine):
        if hasattr(getattr(ProofingMachine, name), "hypothesis_stateful_invariant"):
            getattr(machine, name)()


@pytest.fixture
def pipeline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fast local backends, a billable org; the task path renders with the
    counting renderer, and the doorbell rings nobody (a sync django-q2 would
    run the whole pipeline inside the ring, outside the machine's rules)."""
    monkeypatch.setattr(settings, "PROOFING", {**settings.PROOFING, "backend": "fast", "concurrency": 2})
    monkeypatch.setattr(settings, "DISCOUNTS", {**settings.DISCOUNTS, "backend": "local"})
    monkeypatch.setattr(settings, "BILLING", {**settings.BILLING, "backend": "local"})
    monkeypatch.setattr(service, "get_proof_renderer", lambda: RENDERER)
    monkeypatch.setattr(doorbell, "enqueue", lambda campaign_id: None)
    # This machine is the proofing stage's: the task path stops at Proofed
    # (the mailing stage has its own tests).
    monkeypatch.setattr(runner, "STAGES", [s for s in runner.STAGES if s.name != "mailing"])
    SEEN.clear()


@pytest.mark.django_db(transaction=True)
def test_the_proofing_stage_keeps_its_promises_whatever_happens(pipeline: None) -> None:
    run_state_machine_as_test(
        ProofingMachine,
        settings=hsettings(
            max_examples=30,
            stateful_step_count=30,
            deadline=None,
            database=None,
            # The same exploration every run: the coverage check below must
            # not depend on the draw (the scripted walk covers the rare edges).
            derandomize=True,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
    # The exploration got past the gate's samples, the sweeper and the pause
    # (the rarer places are walked by the scripted test below).
    taken = {(t.from_status, t.to_status, t.reason.split(":")[0]) for t in RecipientTransition.objects.all()}
    assert (S.PROOFING, S.PROOFED, "proofed") in taken
    assert (S.PROOFING, S.PROOFING_STAGED, "lease expired") in taken
    assert {"a batch found the campaign paused", "a batch waited for approval"} <= set(SEEN)


@pytest.mark.django_db(transaction=True)
def test_a_scripted_walk_through_every_rule_keeps_the_invariants(pipeline: None) -> None:
    """One walk that surely reaches every place the invariants speak of, with
    the invariants checked after each step as in the exploration."""
    m = ProofingMachine()
    first = m.ids
    steps: list[tuple[str, dict[str, Any]]] = [
        ("run_a_batch", {"batch_size": 2}),  # two samples
        ("a_worker_crashes", {"where": "after the mint", "limit": 1}),  # third: code minted, then dies
        ("run_a_batch", {"batch_size": 4}),  # 2 made + 1 in flight: waits for approval
        ("advance_clock_and_sweep", {}),
        ("a_worker_crashes", {"where": "in the batch, at the render", "limit": 4}),  # finds the code again
        ("advance_clock_and_sweep", {}),
        ("run_a_batch", {"batch_size": 4}),  # the third sample, with the code minted in the crash
        ("approve_the_samples", {}),
        ("pause", {}),
        ("run_a_batch", {"batch_size": 4}),
        ("the_task_is_delivered_twice", {}),
        ("a_worker_crashes", {"where": "in the batch, at the mint", "limit": 4}),
        ("resume", {}),
        ("the_renderer_fails_next_time", {"kind": "transient"}),
        ("run_a_batch", {"batch_size": 1}),  # the 4th: back to the queue, after a backoff
        ("the_renderer_fails_next_time", {"kind": "permanent"}),
        ("run_a_batch", {"batch_size": 2}),  # 5th, 6th: Error
        ("the_renderer_fails_next_time", {"kind": "creative"}),
        ("run_a_batch", {"batch_size": 1}),  # 7th: Error
        ("a_worker_crashes", {"where": "in the batch, at the mint", "limit": 2}),  # 8th, 9th held by the dead
        ("duplicate_delivery", {"batch_size": 4}),  # 10th proofed, twice delivered
        ("advance_clock_and_sweep", {}),  # 8th, 9th back; the 4th's backoff over
        ("the_renderer_fails_next_time", {"kind": "transient"}),
        ("run_a_batch", {"batch_size": 1}),  # the 4th's second transient failure
        ("advance_clock_and_sweep", {}),
        ("the_renderer_fails_next_time", {"kind": "transient"}),
        ("run_a_batch", {"batch_size": 1}),  # the third: its budget is spent, Error
        ("ops_retry", {}),
        ("the_task_is_delivered_twice", {}),
        ("drain", {}),
    ]
    for name, kwargs in steps:
        getattr(m, name)(**kwargs)
        check(m)
    taken = {(t.from_status, t.to_status, t.reason.split(":")[0]) for t in m._history()}
    for edge in [
        (S.PROOFING, S.PROOFED, "proofed"),
        (S.PROOFING, S.PROOFING_STAGED, "lease expired"),
        (S.PROOFING, S.PROOFING_STAGED, "transient failure"),
        (S.PROOFING, S.ERROR, ErrorMessages.FAILED_TO_MAKE_PROOF),
        (S.PROOFING, S.ERROR, ErrorMessages.COULD_NOT_GENERATE_CREATIVE),
        (S.ERROR, S.PROOFING_STAGED, "ops retry"),
    ]:
        assert edge in taken, edge
    # The 4th failed transiently three times: twice back to the queue, then Error.
    fourth = m._history().filter(recipient_id=first[3]).exclude(to_status=S.PROOFING).order_by("id")
    assert [(t.to_status, t.reason) for t in fourth][1:4] == [
        (S.PROOFING_STAGED, "transient failure: try again later"),
        (S.PROOFING_STAGED, "transient failure: try again later"),
        (S.ERROR, ErrorMessages.FAILED_TO_MAKE_PROOF),
    ]
    assert {
        "a code minted before a crash was found again",
        "a batch found the campaign paused",
        "a batch waited for approval",
        "a worker crashed inside its batch",
        "drained",
    } <= set(SEEN)
