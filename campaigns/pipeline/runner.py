"""The runner: moves each active campaign forward, stage by stage, in batches.

Stages run in the order of the walk of one recipient (docs/pipeline.md):
qualification (Pending → ProofingStaged, Holdout, Skipped, …), enrichment
(AddressEnrichable → Pending or Skipped), proofing (ProofingStaged → Proofed or
Error); the mailing stage joins in part 2.  Each stage is one service the
admin and the commands call too; the runner only asks each, in turn, for a
batch, until a full round moves nothing or the deadline passes.  A paused
campaign claims nothing: the campaign row is read again before every batch.

Every entry point — ``manage.py run_pipeline``, the django-q2 tasks, the demo
— goes through :func:`campaign_advance`.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from campaigns.enrichment.service import campaign_enrich
from campaigns.mailing.service import campaign_mail, scheduled_due, sending_ready
from campaigns.models import Campaign, CampaignRecipient
from campaigns.proofing.design import campaign_approval, campaign_design, sample_room
from campaigns.proofing.service import campaign_proof, stale_proofs
from campaigns.qualification import campaign_qualify
from common.fsm import Actor

logger = logging.getLogger(__name__)
Status = CampaignRecipient.Status


@dataclass(frozen=True)
class StageRun:
    moved: Counter[str]
    note: str = ""  # why the stage stopped short: "waiting for proof approval", a billing problem

    @property
    def progressed(self) -> bool:
        return any(n for k, n in self.moved.items() if k not in NOT_PROGRESS)


# Counts a stage reports that are not a step forward.
NOT_PROGRESS = frozenset({"lost_claim", "released", "retry_later"})


@dataclass(frozen=True)
class Stage:
    name: str
    due: Callable[[Campaign, dt.datetime], int]
    # (campaign, actor, batch size, the caller's deadline as a time.monotonic() value or None)
    run: Callable[[Campaign, Actor, int, float | None], StageRun]


def _ready(now: dt.datetime) -> Q:
    return Q(lease_until__isnull=True) | Q(lease_until__lte=now)


def _qualify_due(campaign: Campaign, now: dt.datetime) -> int:
    return campaign.recipients.filter(status=Status.PENDING).count()


def _qualify_run(campaign: Campaign, actor: Actor, batch_size: int, deadline: float | None) -> StageRun:
    result = campaign_qualify(campaign=campaign, actor=actor, batch_size=max(batch_size, 500))
    return StageRun(Counter(result.moved))


def _enrich_due(campaign: Campaign, now: dt.datetime) -> int:
    if not campaign.address_enrichment:
        return 0
    waiting = Q(status=Status.ADDRESS_ENRICHABLE) | Q(status=Status.ADDRESS_ENRICHING, lease_until__lt=now)
    return campaign.recipients.filter(waiting).count()


def _enrich_run(campaign: Campaign, actor: Actor, batch_size: int, deadline: float | None) -> StageRun:
    if not campaign.address_enrichment:
        return StageRun(Counter())
    counts = campaign_enrich(campaign=campaign, actor=actor, batch_size=batch_size)
    stopped = str(counts.pop("stopped", "") or "")
    moved = Counter({k: v for k, v in counts.items() if k != "retry_later"})
    return StageRun(moved, note=f"enrichment stopped: {stopped}" if stopped else "")


def _proof_due(campaign: Campaign, now: dt.datetime) -> int:
    design = campaign_design(campaign)
    stale = stale_proofs(campaign, design).count()
    staged = campaign.recipients.filter(_ready(now), status=Status.PROOFING_STAGED).count()
    if staged and campaign_approval(campaign, version=design.version) is None:
        staged = min(staged, sample_room(campaign, design.version))
    return stale + staged


def _proof_run(campaign: Campaign, actor: Actor, batch_size: int, deadline: float | None) -> StageRun:
    report = campaign_proof(campaign=campaign, actor=actor, batch_size=batch_size)
    moved = Counter({k: v for k, v in report.moved.items() if v})
    note = ""
    if report.billing_problem:
        note = f"billing is not ready: {report.billing_problem}"
    elif report.waiting_for_approval:
        note = "waiting for a person to approve the sample proofs"
    return StageRun(moved, note=note)


def _mail_due(campaign: Campaign, now: dt.datetime) -> int:
    design = campaign_design(campaign)
    ready = sending_ready(campaign)
    waiting = campaign.recipients.filter(_ready(now), ready, status=Status.SENDING_STAGED).count()
    due = scheduled_due(campaign, timezone.localdate(now), now)
    waiting += campaign.recipients.filter(due).filter(ready).count()
    if campaign_approval(campaign, version=design.version) is not None:
        waiting += campaign.recipients.filter(status=Status.PROOFED, proof_version=design.version).count()
    return waiting


def _mail_run(campaign: Campaign, actor: Actor, batch_size: int, deadline: float | None) -> StageRun:
    roll_s = float(settings.MAILING.get("roll_s") or 0)
    if deadline is not None:  # a rolling run claims nothing new past the task's budget
        roll_s = max(0.0, min(roll_s, deadline - time.monotonic()))
    report = campaign_mail(campaign=campaign, actor=actor, batch_size=batch_size, roll_s=roll_s)
    moved = Counter({k: v for k, v in report.moved.items() if v})
    note = f"billing is not ready: {report.billing_problem}" if report.billing_problem else ""
    return StageRun(moved, note=note)


STAGES: list[Stage] = [
    Stage("qualification", _qualify_due, _qualify_run),
    Stage("enrichment", _enrich_due, _enrich_run),
    Stage("proofing", _proof_due, _proof_run),
    Stage("mailing", _mail_due, _mail_run),
]


@dataclass
class AdvanceReport:
    campaign_id: int
    moved: dict[str, Counter[str]] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    paused: bool = False
    more: bool = False  # the deadline passed with work left

    @property
    def total(self) -> int:
        return sum(n for counts in self.moved.values() for k, n in counts.items() if k not in NOT_PROGRESS)


def campaign_due(campaign: Campaign, now: dt.datetime | None = None) -> dict[str, int]:
    """Rows each stage could move now (the gate and backoffs applied)."""
    now = now or timezone.now()
    return {stage.name: stage.due(campaign, now) for stage in STAGES}


def campaigns_with_work(campaign_ids: list[int] | None = None) -> list[Campaign]:
    """Campaigns that are not paused and hold rows a stage may move."""
    working = [Status.PENDING, Status.ADDRESS_ENRICHABLE, Status.ADDRESS_ENRICHING, Status.PROOFING_STAGED]
    working += [Status.PROOFING, Status.PROOFED, Status.SENDING_STAGED, Status.SENDING, Status.SCHEDULED]
    ids = CampaignRecipient.objects.filter(status__in=working).values("campaign_id")
    campaigns = Campaign.objects.filter(paused=False, pk__in=ids).select_related("organization", "proof_template")
    if campaign_ids is not None:
        campaigns = campaigns.filter(pk__in=campaign_ids)
    return list(campaigns.order_by("pk"))


def campaign_advance(
    campaign_id: int,
    *,
    actor: Actor,
    batch_size: int = 100,
    deadline: float | None = None,
    on_batch: Callable[[str, StageRun], None] | None = None,
) -> AdvanceReport:
    """Run the campaign's stages in rounds until a round moves nothing, the
    campaign is paused, or ``deadline`` (a ``time.monotonic()`` value) passes."""
    report = AdvanceReport(campaign_id)
    while True:
        campaign = Campaign.objects.select_related("organization", "proof_template").filter(pk=campaign_id).first()
        if campaign is None:
            return report
        progressed = False
        for stage in STAGES:
            campaign.refresh_from_db(fields=["paused"])
            if campaign.paused:
                report.paused = True
                return report
            run = stage.run(campaign, actor, batch_size, deadline)
            report.moved.setdefault(stage.name, Counter()).update(run.moved)
            if run.note:
                report.notes[stage.name] = run.note
            elif stage.name in report.notes and run.progressed:
                del report.notes[stage.name]
            if on_batch is not None:
                on_batch(stage.name, run)
            progressed = progressed or run.progressed
            if deadline is not None and time.monotonic() > deadline:
                report.more = True
                return report
        if not progressed:
            return report
