"""Benchmark: the proofing stage, ProofingStaged → Proofed (issue #8).

Ours, the batch design: ``N`` recipients (10k by default) inserted straight into
ProofingStaged (the import's bulk insert, not through the pipeline) of an
approved campaign of a billable org, discount codes on (local backend: one
``LocalDiscountCode`` row per recipient), the fast proof backend (texts and
colours resolved, no image bytes); then ``campaign_advance`` until every row
is Proofed.  Rows per second.

Baseline, measured in the same run on the same database: the per-recipient-
task design on a sample (500).  One django-q2 task per recipient, enqueued
with ``async_task`` through the ORM broker of ``settings.Q_CLUSTER`` (real
``OrmQ`` rows, not sync mode); each task claims exactly its recipient through
the same compare-and-swap (``recipients_bulk_transition(...,
"start_proofing")`` on that one id), mints its code, renders (fast) and
records with the stage's own code.  The queue is drained in this process the
way a cluster handles each task (``broker.dequeue``, unsign, run,
``monitor.save_task`` with the project's ``save_limit``, ``acknowledge``),
minus the cluster's inter-process queues and poll sleeps: a lower bound on
the per-task cost, so the ratio errs in the baseline's favour.

Real proofs: ``LocalProofRenderer`` (Pillow, 300 DPI, both sides, PNG
encoded; no database, no storage) in this one process, as proofs per CPU
second (one process, one thread: one core).  No baseline.

Memory: the largest growth of the resident set over the batch run, sampled
after every batch (``/proc/self/status``; Linux).  No baseline.

Standalone: ``python bench/bench_proofing.py`` (SQLite on a throwaway file, or
the database of ``DATABASE_URL``); ``bench/run.py`` runs it on both databases.
``BENCH_PROOF_N``, ``BENCH_PROOF_SAMPLE`` and ``BENCH_PROOF_BATCH`` change the
row count, the baseline's sample and the batch size; ``BENCH_PROOF_EXPLORE``
set: time a few batch sizes on ``N`` rows instead (how the default was chosen).
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

# The 100k: the stage moves ~1,000-1,400 rows/s on either database
# since codes are minted and rows written per batch, not per row (about 1.5
# minutes per database).  BENCH_PROOF_N=10000 for a quick run.
N = int(os.environ.get("BENCH_PROOF_N", "100000"))
# 500 tasks take about a minute on PostgreSQL.  Fewer than the save_limit
# (1000) of django-q2's result table, whose pruning grows with it: a smaller
# sample only flatters the baseline.
SAMPLE = int(os.environ.get("BENCH_PROOF_SAMPLE", "500"))
# Best of 100/250/500/1000/2000 on both databases (bench/README.md).
BATCH = int(os.environ.get("BENCH_PROOF_BATCH", "1000"))
EXPLORE_SIZES = (100, 250, 500, 1000, 2000)
# Discount codes on: the per-task design mints too, so both sides pay for the
# codes.  BENCH_PROOF_CODES=0 measures both without (bench/README.md).
CODES = os.environ.get("BENCH_PROOF_CODES", "1") != "0"
GOAL = 30.0
REAL_PROOFS = {"4x6": 20, "6x11": 10}
INSERT_CHUNK = 5000
TASK = "bench.bench_proofing.proof_one_recipient"  # by path: the worker side imports it
HERE = Path(__file__).resolve().parent


def _django() -> None:
    sys.path.insert(0, str(HERE.parent))
    from bench.shared import django_setup

    # The documented fast mode and the local backends.
    django_setup("proofing", {"PROOFING_BACKEND": "fast", "DISCOUNTS_BACKEND": "local", "BILLING_BACKEND": "local"})
    # This benchmark is ProofingStaged → Proofed: the runner's later stage
    # (mailing, bench_mailing.py) is left out.
    from campaigns.pipeline import runner

    runner.STAGES[:] = [stage for stage in runner.STAGES if stage.name != "mailing"]


# ---------------------------------------------------------------------- set-up
def _campaign(name: str) -> Any:
    """An approved campaign with discount codes, of a billable org."""
    from bench.shared import approved_campaign

    return approved_campaign("bench-proofing-org", name=name, discount_enabled=CODES, discount_value="10%")


def _stage(campaign: Any, n: int) -> list[int]:
    """``n`` recipients straight into ProofingStaged (the import's bulk insert)."""

    from bench.shared import insert_recipients
    from campaigns.models import CampaignRecipient
    from campaigns.recipient_insert import recipients_refresh_statistics

    ids = insert_recipients(campaign, n, CampaignRecipient.Status.PROOFING_STAGED, chunk=INSERT_CHUNK)
    recipients_refresh_statistics()
    return ids


def _proofed(campaign: Any) -> dict[str, int]:
    from django.db.models import Count

    return dict(campaign.recipients.values_list("status").annotate(n=Count("id")).order_by())


def _check(campaign: Any, n: int, what: str) -> None:
    """Every row Proofed with a code, else the figure means nothing."""
    from campaigns.models import CampaignRecipient, LocalDiscountCode

    counts = _proofed(campaign)
    codes = LocalDiscountCode.objects.filter(campaign=campaign).count()
    with_code = campaign.recipients.exclude(discount_code="").count()
    want = n if CODES else 0
    if counts != {CampaignRecipient.Status.PROOFED: n} or codes != want or with_code != want:
        raise AssertionError(f"{what}: expected {n} Proofed, {want} codes, got {counts}, {codes} codes, {with_code}")


def _rss_kb() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


# ---------------------------------------------------------------------- ours: the batch design
def _batch(n: int, batch_size: int, name: str) -> tuple[float, int]:
    """Seconds to move ``n`` staged rows to Proofed; and the RSS growth (kB)."""
    from campaigns.pipeline.runner import campaign_advance
    from common.fsm import Actor

    campaign = _campaign(name)
    _stage(campaign, n)
    before = peak = _rss_kb()

    def sample(stage: str, run: Any) -> None:
        nonlocal peak
        peak = max(peak, _rss_kb())

    start = time.perf_counter()
    campaign_advance(campaign.pk, actor=Actor("bench"), batch_size=batch_size, on_batch=sample)
    elapsed = time.perf_counter() - start
    _check(campaign, n, name)
    print(f"  {name}: {n} rows in {elapsed:.2f} s ({n / elapsed:.0f} rows/s)", file=sys.stderr, flush=True)
    return elapsed, peak - before


# ---------------------------------------------------------------------- baseline: one task per recipient
def proof_one_recipient(recipient_id: int) -> str:
    """The per-recipient-task design: the task django-q2 runs for one recipient.

    Same checks as a batch (paused, billing, approval), a claim of exactly this
    row through the stage's compare-and-swap, then the stage's own code, mint,
    render and record, for a batch of one."""
    from django.utils import timezone

    from campaigns.billing.service import preflight_campaign_billing
    from campaigns.discounts.base import get_discount_client
    from campaigns.models import CampaignRecipient
    from campaigns.proofing.base import get_proof_renderer
    from campaigns.proofing.design import campaign_approval, campaign_design
    from campaigns.proofing.service import LEASE, _code_one, _record, _render_one
    from campaigns.services import recipients_bulk_transition
    from common.fsm import Actor

    r = (
        CampaignRecipient.objects.select_related("campaign__organization", "campaign__proof_template")
        .filter(pk=recipient_id)
        .first()
    )
    if r is None or r.status != CampaignRecipient.Status.PROOFING_STAGED:
        return "nothing to do"
    campaign = r.campaign
    if campaign.paused:
        return "paused"
    design = campaign_design(campaign)
    if not preflight_campaign_billing(campaign).ready:
        return "billing not ready"
    if campaign_approval(campaign, version=design.version) is None:
        return "waiting for approval"
    actor = Actor("task:proof-one")
    token = uuid.uuid4()
    claimed = recipients_bulk_transition(
        queryset=CampaignRecipient.objects.filter(pk=recipient_id),
        method="start_proofing",
        actor=actor,
        reason="taken by a worker to make its proof",
        payload={"claim_token": str(token)},
        claim_token=token,
        lease_until=timezone.now() + LEASE,
    )
    if not claimed:
        return "claimed by another worker"
    out = _code_one(campaign, r, get_discount_client())
    if not out.message:
        out = _render_one(campaign, design, r, out, (campaign.organization.name,), get_proof_renderer())
    moved = _record([r], {r.pk: out}, token, design, actor)
    return ",".join(sorted(k for k, v in moved.items() if v))


def _per_task(n: int, name: str) -> tuple[float, dict[str, float]]:
    """Seconds to enqueue, deliver, run, save and acknowledge one task per
    recipient for ``n`` staged rows; and the time per phase."""
    from bench.shared import run_one_task_each

    campaign = _campaign(name)
    ids = _stage(campaign, n)
    elapsed, phases = run_one_task_each(TASK, ids, name)
    _check(campaign, n, name)
    print(f"  {name}: {n} tasks in {elapsed:.2f} s ({n / elapsed:.0f} rows/s)", file=sys.stderr, flush=True)
    return elapsed, phases


# ---------------------------------------------------------------------- real proofs
def _real_proofs(size: str, n: int) -> tuple[float, float]:
    """Proofs (both sides, PNG) per CPU second and per wall second."""
    from campaigns.proofing.base import ProofDesign, ProofJob
    from campaigns.proofing.local import LocalProofRenderer

    renderer = LocalProofRenderer()
    design = ProofDesign(version=f"bench.{size}.code", offer="Show code {discount_code} for {discount_value} off")

    def job(i: int) -> ProofJob:
        merge = {
            "first_name": f"Pat{i}",
            "last_name": "Doe",
            "full_name": f"Pat{i} Doe",
            "company": "",
            "city": "Springfield",
            "discount_code": f"BENCH{i:06d}",
            "discount_value": "10%",
            "organization": "Bench Coffee Roasters",
        }
        address = (f"Pat{i} Doe", f"{i} Main St", "Springfield, IL 62701")
        return ProofJob(recipient_id=i, size=size, design=design, merge=merge, address_lines=address,
                        sender_lines=("Bench Coffee Roasters", "1 Roastery Way", "Portland, OR 97201"))  # fmt: skip

    renderer.render(job(-1))  # fonts, the artwork cache
    cpu, wall = time.process_time(), time.perf_counter()
    for i in range(n):
        proof = renderer.render(job(i))
        if not (proof.front and proof.back):
            raise AssertionError(f"{size}: an empty proof")
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    print(f"  real proofs {size}: {n} in {wall:.2f} s ({cpu:.2f} s CPU)", file=sys.stderr, flush=True)
    return n / cpu, n / wall


# ---------------------------------------------------------------------- the run
def run() -> list[dict[str, Any]]:
    _django()
    if os.environ.get("BENCH_PROOF_EXPLORE"):
        return _explore()
    _batch(min(N, 1000), BATCH, "warm-up batch")
    _per_task(min(SAMPLE, 50), "warm-up per-task")
    task_s, phases = _per_task(SAMPLE, f"per-task {SAMPLE}")
    batch_s, rss_kb = _batch(N, BATCH, f"batch {N}")
    ours, base = N / batch_s, SAMPLE / task_s
    real = {size: _real_proofs(size, n) for size, n in REAL_PROOFS.items()}
    per_task_ms = {k: round(v * 1000 / SAMPLE, 2) for k, v in phases.items()}
    suffix = "" if CODES else "_no_codes"
    metrics: list[dict[str, Any]] = [
        {
            "name": f"proofing_batch_{N / 1000:g}k_vs_task_per_recipient{suffix}",
            "value": round(ours, 1),
            "unit": "rows/s",
            "baseline": round(base, 1),
            "goal": GOAL,
            "better": "higher",
            "notes": (
                f"batch: {N} rows in {batch_s:.2f} s, campaign_advance batch_size {BATCH}, discount codes "
                f"{'on (local)' if CODES else 'off'}, PROOFING backend fast; per-task: {SAMPLE} django-q2 tasks "
                f"through the ORM broker in {task_s:.2f} s, drained in-process; ms per task by phase {per_task_ms}"
            ),
        },
    ]
    for size, (per_cpu_s, per_wall_s) in real.items():
        metrics.append(
            {
                "name": f"real_proofs_{size}_per_core",
                "value": round(per_cpu_s, 2),
                "unit": "proofs/s",
                "baseline": None,
                "goal": None,
                "notes": (
                    f"LocalProofRenderer, 300 DPI, front and back, PNG (zlib 1), {REAL_PROOFS[size]} proofs; "
                    f"per CPU second of this process, {per_wall_s:.2f}/s wall clock; no database, no storage"
                ),
            }
        )
    metrics.append(
        {
            "name": f"proofing_batch_{N / 1000:g}k_rss_growth",
            "value": round(rss_kb / 1024, 1),
            "unit": "MB",
            "baseline": None,
            "goal": None,
            "notes": "largest resident-set growth over the batch run, sampled after every batch",
        }
    )
    return metrics


def _explore() -> list[dict[str, Any]]:
    """How the default batch size was chosen: each size on ``N`` rows."""
    _batch(min(N, 2000), BATCH, "warm-up batch")
    metrics = []
    for size in EXPLORE_SIZES:
        elapsed, _ = _batch(N, size, f"batch_size {size}")
        metrics.append(
            {
                "name": f"proofing_batch_size_{size}",
                "value": round(N / elapsed, 1),
                "unit": "rows/s",
                "baseline": None,
            }
        )
    return metrics


if __name__ == "__main__":
    for metric in run():
        if metric["baseline"] is None:
            print(f"{metric['name']}: {metric['value']} {metric['unit']} | {metric.get('notes', '')}")
            continue
        ratio = metric["value"] / metric["baseline"] if metric["baseline"] else float("inf")
        print(
            f"{metric['name']}: {metric['value']} {metric['unit']} | baseline {metric['baseline']} {metric['unit']} "
            f"| ratio {ratio:.2f} (goal >= {metric['goal']}) | {metric.get('notes', '')}"
        )
