"""``campaign_proof``: one proofing batch of a campaign (ProofingStaged → Proofing
→ Proofed, or Error with the spec's message).

1. Proofs made from an older design go back to ProofingStaged (``reproof``).
2. Billing preflight, before anything costs money: an org that cannot be
   billed (or whose billing cannot be checked) claims nothing, and every
   staged row of the campaign becomes Error(BILLING_NOT_READY) with the
   problem in words.  0 renders, 0 codes.
3. The approval gate: without an approval of the current design, only
   ``SAMPLE_SIZE`` proofs are made or have failed (the samples a person approves).
4. Claim a batch (one CAS: ProofingStaged → Proofing, token and lease).
5. Outside any transaction, per row (in a small thread pool): the discount
   code (kept if the row has one; derived, so a retry after a crash finds
   the code it minted), the render, and the two images written to storage
   under names fixed by (campaign, recipient, design version).
6. One short transaction records the outcomes, guarded by the token (a worker
   that outlived its lease writes nothing): Proofed with the images' names;
   transient failures back to ProofingStaged with a backoff until the
   attempt budget is spent; the rest Error with the message of their cause
   (docs/proofing.md).  Codes minted are stored even when the render failed.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from campaigns.billing.service import preflight_campaign_billing
from campaigns.claims import recipients_claim
from campaigns.discounts.base import DiscountClient, DiscountError, discount_code_for, get_discount_client
from campaigns.discounts.service import recipient_discount_code
from campaigns.models import NEVER_SENT, SCHEDULED_UNTOUCHED, Campaign, CampaignRecipient, ErrorMessages
from campaigns.proofing.base import ProofDesign, ProofError, ProofJob, ProofRenderer, get_proof_renderer
from campaigns.proofing.design import campaign_approval, campaign_design, sample_room
from campaigns.services import (
    recipients_bulk_transition,
    recipients_fail_queued,
    recipients_wait_saying,
    recipients_write_rows,
)
from common.fsm import Actor
from common.http import OutboundError

logger = logging.getLogger(__name__)

Status = CampaignRecipient.Status
LEASE = timedelta(minutes=10)
MAX_ATTEMPTS = 3
BACKOFF = timedelta(seconds=30)  # doubled per attempt; a vendor's Retry-After wins when longer
CHUNK = 1000
LOCAL_RENDER_S = 5.0


@dataclass
class ProofOutcome:
    """What happened to one claimed row."""

    code: str = ""
    front: str = ""
    back: str = ""
    message: str = ""  # an ErrorMessages value: the row goes to Error
    detail: str = ""
    retry_after: float | None = None  # set: a transient failure, try again later
    transient: bool = False


@dataclass
class ProofReport:
    moved: Counter[str] = field(default_factory=Counter)
    claimed: int = 0
    waiting_for_approval: bool = False
    billing_problem: str = ""
    paused: bool = False

    @property
    def progressed(self) -> bool:
        return bool(sum(self.moved.values()))


def campaign_proof(
    *,
    campaign: Campaign,
    actor: Actor,
    batch_size: int = 100,
    renderer: ProofRenderer | None = None,
    discounts: DiscountClient | None = None,
    concurrency: int | None = None,
) -> ProofReport:
    """Run one proofing batch of ``campaign``; safe to run twice at once."""
    report = ProofReport()
    campaign.refresh_from_db()
    if campaign.paused:
        report.paused = True
        return report
    design = campaign_design(campaign)
    report.moved["reproof"] = len(_reproof_stale(campaign, design, actor))
    staged = campaign.recipients.filter(status=Status.PROOFING_STAGED)
    if not staged.exists():
        return report
    check = preflight_campaign_billing(campaign)
    if not check.ready:
        report.billing_problem = check.problem
        report.moved[ErrorMessages.BILLING_NOT_READY] = campaign_fail_staged(
            campaign=campaign, message=ErrorMessages.BILLING_NOT_READY, detail=check.problem, actor=actor
        )
        return report
    limit = batch_size
    if campaign_approval(campaign, version=design.version) is None:
        limit = min(batch_size, sample_room(campaign, design.version))
        if limit <= 0:
            report.waiting_for_approval = True
            return report
    renderer = renderer or get_proof_renderer()
    if campaign.discount_enabled and discounts is None:
        discounts = get_discount_client()
    conf: dict[str, Any] = settings.PROOFING
    workers = max(1, concurrency or int(conf.get("concurrency") or 4))
    # The lease outlasts the batch's worst case (every call of a network
    # renderer hitting its timeout), or a second worker would take rows still
    # being rendered; a local render takes well under LOCAL_RENDER_S.
    per_row = float(getattr(renderer, "timeout", 0) or LOCAL_RENDER_S)
    lease = max(LEASE, timedelta(seconds=math.ceil(limit / workers) * per_row * 2))
    claim = recipients_claim(campaign=campaign, method="start_proofing", limit=limit, lease=lease, actor=actor)
    report.claimed = len(claim)
    if not claim.ids:
        return report
    rows = list(CampaignRecipient.objects.filter(pk__in=claim.ids, claim_token=claim.token).order_by("id"))
    sender = (campaign.organization.name,)  # loaded here: worker threads must not query

    def code(r: CampaignRecipient) -> ProofOutcome:
        return _code_one(campaign, r, discounts)

    def render(pair: tuple[CampaignRecipient, ProofOutcome]) -> ProofOutcome:
        r, out = pair
        return out if out.message else _render_one(campaign, design, r, out, sender, renderer)

    # Codes from a client that writes our database are minted in this thread;
    # network clients (Shopify) and every render run in the pool.
    in_pool = workers > 1 and len(rows) > 1
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="proof") as pool:
        if campaign.discount_enabled and hasattr(discounts, "mint_many"):
            coded = _code_many(campaign, rows, discounts)
        elif in_pool and not getattr(discounts, "uses_database", False):
            coded = list(pool.map(code, rows))
        else:
            coded = [code(r) for r in rows]
        done = (
            list(pool.map(render, zip(rows, coded, strict=True)))
            if in_pool
            else [render(p) for p in zip(rows, coded, strict=True)]
        )
    outcomes = {r.pk: out for r, out in zip(rows, done, strict=True)}
    report.moved.update(_record(rows, outcomes, claim.token, design, actor))
    return report


def _code_one(campaign: Campaign, r: CampaignRecipient, discounts: DiscountClient | None) -> ProofOutcome:
    """The row's discount code: its own when it has one, else minted (derived,
    so minting again after a crash finds the same code)."""
    out = ProofOutcome(code=r.discount_code)
    if not campaign.discount_enabled or discounts is None:
        return out
    try:
        out.code = recipient_discount_code(
            campaign=campaign, recipient_id=r.pk, existing_code=r.discount_code, client=discounts
        )
    except DiscountError as exc:
        return _failed(out, exc, ErrorMessages.FAILED_TO_APPLY_DISCOUNT_CODE)
    return out


def _code_many(campaign: Campaign, rows: list[CampaignRecipient], discounts: Any) -> list[ProofOutcome]:
    """``_code_one`` for a batch, through a client that mints many codes at
    once (the local backend: two statements instead of two per row)."""
    outs = [ProofOutcome(code=r.discount_code) for r in rows]
    wanted = {r.pk: discount_code_for(campaign, r.pk) for r in rows if not r.discount_code}
    try:
        minted = discounts.mint_many(campaign=campaign, codes=wanted)
    except DiscountError as exc:
        minted = dict.fromkeys(wanted, exc)
    for r, out in zip(rows, outs, strict=True):
        result = minted.get(r.pk)
        if isinstance(result, DiscountError):
            _failed(out, result, ErrorMessages.FAILED_TO_APPLY_DISCOUNT_CODE)
        elif result:
            out.code = result
    return outs


def _render_one(
    campaign: Campaign,
    design: ProofDesign,
    r: CampaignRecipient,
    out: ProofOutcome,
    sender: tuple[str, ...],
    renderer: ProofRenderer,
) -> ProofOutcome:
    """Render and store the row's proof; never touches the database."""
    try:
        proof = renderer.render(recipient_proof_job(campaign, design, r, out.code, sender))
        if proof.front or proof.back:
            out.front, out.back = _store(campaign, design, r, proof.front, proof.back, proof.extension)
    except ProofError as exc:
        creative = exc.cause == "creative"
        return _failed(
            out, exc, ErrorMessages.COULD_NOT_GENERATE_CREATIVE if creative else ErrorMessages.FAILED_TO_MAKE_PROOF
        )
    except OutboundError as exc:
        return _failed(out, exc, ErrorMessages.FAILED_TO_MAKE_PROOF)
    except Exception as exc:  # a bug in a renderer or the storage must not take the batch down
        logger.exception("proof of recipient %s failed", r.pk)
        out.message, out.detail = ErrorMessages.FAILED_TO_MAKE_PROOF, f"unexpected error: {type(exc).__name__}"
    return out


def _failed(out: ProofOutcome, exc: OutboundError, message: str) -> ProofOutcome:
    out.detail = exc.message
    if exc.permanent:
        out.message = message
    else:
        out.transient, out.retry_after = True, exc.retry_after
        out.message = message  # used once the attempt budget is spent
    return out


def recipient_merge(campaign: Campaign, r: CampaignRecipient, code: str) -> dict[str, str]:
    """Every merge field of ``campaigns.models.MERGE_FIELDS`` for ``r``."""
    full = " ".join(p for p in (r.first_name, r.last_name) if p)
    return {
        "first_name": r.first_name,
        "last_name": r.last_name,
        "full_name": full,
        "company": r.company,
        "city": r.city,
        "discount_code": code,
        "discount_value": campaign.discount_value,
        "organization": campaign.organization.name,
    }


def recipient_address_lines(r: CampaignRecipient) -> tuple[str, ...]:
    """The address block as a printer prints it."""
    name = " ".join(p for p in (r.first_name, r.last_name) if p)
    country = (r.country or "").upper()
    if country in ("US", "CA", "AU"):
        city_line = " ".join(p for p in (f"{r.city}," if r.city else "", r.state, r.zip) if p)
        lines = [name, r.company, r.address1, r.address2, city_line]
    else:
        lines = [name, r.company, r.address1, r.address2, r.city, r.state, r.zip]
    if country and country != "US":
        lines.append(country)
    return tuple(line.strip(" ,") for line in lines if line and line.strip(" ,"))


def recipient_proof_job(
    campaign: Campaign, design: ProofDesign, r: CampaignRecipient, code: str, sender: tuple[str, ...] = ()
) -> ProofJob:
    return ProofJob(
        recipient_id=r.pk,
        size=campaign.size,
        design=design,
        merge=recipient_merge(campaign, r, code),
        address_lines=recipient_address_lines(r),
        sender_lines=sender,
    )


def proof_name(campaign: Campaign, recipient_id: int, version: str, side: str, extension: str) -> str:
    """Where a proof side lives in storage: fixed by what it shows, so a
    second render of the same proof replaces the first instead of piling up."""
    return f"proofs/campaign-{campaign.pk}/{recipient_id}-{version}-{side}.{extension}"


def _store(
    campaign: Campaign, design: ProofDesign, r: CampaignRecipient, front: bytes, back: bytes, extension: str
) -> tuple[str, str]:
    names = []
    for side, data in (("front", front), ("back", back)):
        name = proof_name(campaign, r.pk, design.version, side, extension)
        if default_storage.exists(name):
            default_storage.delete(name)
        names.append(default_storage.save(name, ContentFile(data)))
    return names[0], names[1]


def _record(
    rows: list[CampaignRecipient],
    outcomes: dict[int, ProofOutcome],
    token: uuid.UUID,
    design: ProofDesign,
    actor: Actor,
) -> Counter[str]:
    now = timezone.now()
    counts: Counter[str] = Counter()
    attempts = {r.pk: r.attempt for r in rows}
    with transaction.atomic():
        mine = CampaignRecipient.objects.filter(pk__in=[r.pk for r in rows], claim_token=token, status=Status.PROOFING)
        held = set(mine.select_for_update().values_list("pk", flat=True))
        counts["lost_claim"] = len(rows) - len(held)
        ok: list[int] = []
        retry: list[int] = []
        retry_after = 0.0
        failed: defaultdict[tuple[str, str], list[int]] = defaultdict(list)
        proofs: list[tuple[str, str, str, str, int]] = []
        codes: list[tuple[str, int]] = []
        for pk, out in outcomes.items():
            if pk not in held:
                continue
            if not out.message:
                ok.append(pk)
                proofs.append((out.code, out.front, out.back, design.version, pk))
                continue
            if out.code:  # a code minted for a row whose render failed is kept
                codes.append((out.code, pk))
            if out.transient and attempts[pk] + 1 < MAX_ATTEMPTS:
                retry.append(pk)
                retry_after = max(retry_after, out.retry_after or 0.0, (BACKOFF * 2 ** attempts[pk]).total_seconds())
            else:
                failed[(out.message, out.detail)].append(pk)
        recipients_write_rows(fields=("discount_code", "proof_url", "proof_back_url", "proof_version"), rows=proofs)
        recipients_write_rows(fields=("discount_code",), rows=codes)
        if ok:
            moved = recipients_bulk_transition(
                queryset=CampaignRecipient.objects.filter(pk__in=ok, claim_token=token),
                method="mark_proofed",
                actor=actor,
                reason="proofed",
                payload={"design": design.version},
            )
            counts[Status.PROOFED] += len(moved)
        if retry:
            CampaignRecipient.objects.filter(pk__in=retry).update(attempt=F("attempt") + 1)
            moved = recipients_bulk_transition(
                queryset=CampaignRecipient.objects.filter(pk__in=retry, claim_token=token),
                method="requeue_proofing",
                actor=actor,
                reason="transient failure: try again later",
                not_before=now + timedelta(seconds=retry_after),
            )
            counts["retry_later"] += len(moved)
        for (message, detail), ids in failed.items():
            moved = recipients_bulk_transition(
                queryset=CampaignRecipient.objects.filter(pk__in=ids, claim_token=token),
                method="fail",
                actor=actor,
                reason=message,
                message=message,
                detail=detail,
            )
            counts[message] += len(moved)
    return counts


def _reproof_stale(campaign: Campaign, design: ProofDesign, actor: Actor) -> list[int]:
    """Rows proofed from another design version go back to the queue: Proofed
    ones, SendingStaged ones no attempt was made for (waiting for the next
    batch, or a backoff) and Scheduled ones nothing of which is at the
    printer, whose approval no longer holds.  A row tried before may be at
    the printer: it finishes as it was sent (``reproof``'s guard leaves it)."""
    return recipients_bulk_transition(
        queryset=stale_proofs(campaign, design),
        method="reproof",
        actor=actor,
        reason=f"the design changed (now {design.version})",
    )


def stale_proofs(campaign: Campaign, design: ProofDesign) -> QuerySet[CampaignRecipient]:
    """The rows :func:`_reproof_stale` sends back to proofing."""
    return campaign.recipients.filter(
        Q(status=Status.PROOFED)
        | (Q(status=Status.SENDING_STAGED) & NEVER_SENT)
        | (Q(status=Status.SCHEDULED) & SCHEDULED_UNTOUCHED)
    ).exclude(proof_version=design.version)


def campaign_fail_staged(
    *, campaign: Campaign, message: str, detail: str, actor: Actor, status: str = Status.PROOFING_STAGED
) -> int:
    """Every row of the campaign staged in ``status`` (ProofingStaged, or
    SendingStaged) to Error(message), in chunks.  Not a SendingStaged row
    that was sent before (a timeout after the printer made the piece, say):
    its piece may be in the mail, so it waits, saying why, and its next
    attempt looks it up first (as the billing check leaves such rows)."""
    rows = campaign.recipients.filter(status=status)
    if status == Status.SENDING_STAGED:
        attempted = rows.filter(first_attempt_at__isnull=False)
        recipients_wait_saying(queryset=attempted, why=detail)
        rows = rows.filter(first_attempt_at__isnull=True)
    return recipients_fail_queued(rows=rows, message=message, detail=detail, actor=actor, chunk=CHUNK)
