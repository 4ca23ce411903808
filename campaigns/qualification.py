"""Qualification: where each Pending recipient of a campaign goes next.

For every Pending recipient, in id order and in batches, the first rule that
applies decides:

1. on the org's blocklist (address key or email key)     -> Blacklisted
2. no address1: enrichment on                            -> AddressEnrichable
               enrichment off                            -> Skipped(NoAddress)
3. the campaign printer's approval model rejects it      -> Skipped(PrinterApprovalFailed),
                                                             errors in json["approval_errors"]
4. holdout draw (campaign seed, natural key)             -> Holdout
5. the org's recipient cap is used up                    -> Skipped(CapExceeded)
6. otherwise                                             -> ProofingStaged

The cap comes last on purpose: only a recipient that would really be mailed
uses a slot, so a blocked, unapprovable or held-out row never takes the place
of a mailable one.  The slots already used are the campaign's recipients that
are staged or further along (see ``CAP_COUNTED``); the remaining slots go to
the lowest ids first, so which rows exceed the cap is deterministic.  The cap
holds when qualifications run at once (an import and a re-validation, two
workers): each batch counts the used slots and stages in one transaction
that holds the org's lock.  Every move is a bulk transition along the
model's FSM edges, with history.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from typing import Any

from django.db import connections, router, transaction
from django.db.models import F, QuerySet

from campaigns.holdout import holdout_bucket, holdout_threshold
from campaigns.models import BlocklistEntry, Campaign, CampaignRecipient, Organization
from campaigns.recipient_json import APPROVAL_ERRORS
from campaigns.selectors import campaign_printer_class
from campaigns.services import recipients_bulk_transition
from campaigns.validation import blocklist_address_key, blocklist_email_key, blocklist_entry_key
from common.fsm import Actor
from common.models import EqualsAny

Status = CampaignRecipient.Status
SkipReason = CampaignRecipient.SkipReason

# Recipients that use a slot of the org's cap: staged, in the pipeline, mailed,
# or failed (an Error may be retried and mailed).
CAP_COUNTED = (
    Status.PROOFING_STAGED,
    Status.PROOFING,
    Status.PROOFED,
    Status.SENDING_STAGED,
    Status.SENDING,
    Status.SENT,
    Status.RECEIVED,
    Status.SCHEDULED,
    Status.ERROR,
)
APPROVAL_FIELDS = ("first_name", "last_name", "company", "address1", "address2", "city", "state", "zip", "country")
_LOADED = ("id", "natural_key", "email", *APPROVAL_FIELDS)


@dataclass(frozen=True)
class Decision:
    method: str  # transition method name
    skip_reason: str = ""
    approval_errors: list[dict[str, Any]] | None = None


@dataclass
class QualifyResult:
    """Counts of the moves made (by target status and skip reason) and the
    decision per recipient id when asked for (the dry run)."""

    moved: Counter[str] = field(default_factory=Counter)
    decisions: dict[int, Decision] | None = None

    def as_dict(self) -> dict[str, int]:
        return dict(sorted(self.moved.items()))


def org_blocklist_keys(campaign: Campaign) -> set[str]:
    """The keys stored on the org's entries, plus the keys recomputed from their
    fields (entries typed in by hand may lack a key or carry an old one)."""
    keys: set[str] = set()
    for entry in BlocklistEntry.objects.filter(organization_id=campaign.organization_id).values(
        "key", "address1", "zip", "country", "email"
    ):
        if entry["key"]:
            keys.add(entry["key"])
        if entry["email"]:
            keys.add(blocklist_email_key(entry["email"]))
        if entry["address1"]:
            keys.add(blocklist_entry_key(address1=entry["address1"], zip=entry["zip"], country=entry["country"]))
    return keys


def _approval_check(campaign: Campaign) -> Callable[[dict[str, Any]], list[dict[str, Any]]] | None:
    printer = campaign_printer_class(campaign)
    return printer.approval_errors if printer is not None else None


def _pending_batches(
    campaign: Campaign, batch_size: int, only_ids: Collection[int] | None = None
) -> Iterator[list[dict[str, Any]]]:
    pending = CampaignRecipient.objects.filter(campaign=campaign, status=Status.PENDING).order_by("id")
    if only_ids is not None:
        # In id chunks: a long IN list would pass SQLite's parameter limit.
        ids = sorted(set(only_ids))
        for start in range(0, len(ids), batch_size):
            batch = list(pending.filter(pk__in=ids[start : start + batch_size]).values(*_LOADED))
            if batch:
                yield batch
        return
    last = 0
    while batch := list(pending.filter(id__gt=last).values(*_LOADED)[:batch_size]):
        yield batch
        last = batch[-1]["id"]


def campaign_qualify(
    *,
    campaign: Campaign,
    actor: Actor,
    dry_run: bool = False,
    batch_size: int = 2000,
    keep_decisions: bool = False,
    only_ids: Collection[int] | None = None,
) -> QualifyResult:
    """Move the campaign's Pending recipients on (see the module docstring);
    with ``only_ids``, only those of them.  ``dry_run`` runs it all in a
    transaction that is rolled back.  Safe inside a caller's transaction."""
    if batch_size < 1:  # a batch of 0 rows would end the loop at once: nothing qualified
        raise ValueError(f"batch_size must be at least 1, not {batch_size}")
    if dry_run:
        with transaction.atomic():
            result = _qualify(campaign, actor, batch_size, keep_decisions, only_ids)
            transaction.set_rollback(True)
        return result
    return _qualify(campaign, actor, batch_size, keep_decisions, only_ids)


def _qualify(
    campaign: Campaign, actor: Actor, batch_size: int, keep_decisions: bool, only_ids: Collection[int] | None
) -> QualifyResult:
    result = QualifyResult(decisions={} if keep_decisions else None)
    blocked = org_blocklist_keys(campaign)
    approve = _approval_check(campaign)
    threshold = holdout_threshold(campaign.holdout_percent)
    seed = str(campaign.holdout_seed)  # a fresh Campaign holds a UUID object until reloaded
    for batch in _pending_batches(campaign, batch_size, only_ids):
        decided: dict[int, Decision] = {}
        mailable: list[int] = []  # in id order: the cap's slots go to the lowest ids
        for row in batch:
            decision = _decide(row, campaign, blocked, approve, seed, threshold)
            if decision is None:
                mailable.append(row["id"])
            else:
                decided[row["id"]] = decision
        with transaction.atomic():
            # Mailable rows first: the org's lock is the first lock this transaction takes.
            capped = _stage_within_cap(campaign, mailable, actor, result) if mailable else {}
            _apply(decided, actor, result)
        if result.decisions is not None:
            result.decisions.update(decided)
            result.decisions.update(capped)
    return result


def _stage_within_cap(campaign: Campaign, ids: list[int], actor: Actor, result: QualifyResult) -> dict[int, Decision]:
    """Stage ``ids`` while the cap has slots, skip the rest as CapExceeded.

    Runs inside the batch's transaction, and the slots are counted after the
    org's row is locked (PostgreSQL: ``SELECT … FOR UPDATE``; SQLite: the
    IMMEDIATE transaction already holds the database's write lock), so two
    qualifications never hand out the same slot: the second one counts what
    the first one staged.  A row another worker moved meanwhile is not staged
    and its slot goes to the next row.
    """
    cap = (
        Organization.objects.select_for_update()
        .values_list("recipient_cap", flat=True)
        .get(pk=campaign.organization_id)
    )
    # Without a cap every row has a slot (and the used ones need no counting).
    if cap is None:
        remaining = len(ids)
    else:
        remaining = cap - CampaignRecipient.objects.filter(campaign=campaign, status__in=CAP_COUNTED).count()
    decisions: dict[int, Decision] = {}
    todo = ids
    while todo and remaining > 0:
        take, todo = todo[:remaining], todo[remaining:]
        decisions.update(dict.fromkeys(take, Decision("stage_proofing")))
        staged = _move(take, "stage_proofing", actor)
        result.moved[_TARGETS["stage_proofing"]] += len(staged)
        remaining -= len(staged)
    if todo:
        exceeded = Decision("skip", SkipReason.CAP_EXCEEDED)
        decisions.update(dict.fromkeys(todo, exceeded))
        result.moved[f"Skipped:{SkipReason.CAP_EXCEEDED}"] += len(_move(todo, "skip", actor, SkipReason.CAP_EXCEEDED))
    return decisions


def _recipients(ids: list[int]) -> QuerySet[CampaignRecipient]:
    if connections[router.db_for_write(CampaignRecipient)].vendor == "postgresql":
        return CampaignRecipient.objects.filter(EqualsAny(F("pk"), ids))
    return CampaignRecipient.objects.filter(pk__in=ids)


def _move(ids: list[int], method: str, actor: Actor, skip_reason: str = "") -> list[int]:
    extra: dict[str, Any] = {"skip_reason": str(skip_reason)} if skip_reason else {}
    return recipients_bulk_transition(
        queryset=_recipients(ids),
        method=method,
        actor=actor,
        reason="qualification" + (f": {skip_reason}" if skip_reason else ""),
        **extra,
    )


def _decide(
    row: dict[str, Any],
    campaign: Campaign,
    blocked: set[str],
    approve: Callable[[dict[str, Any]], list[dict[str, Any]]] | None,
    seed: str,
    threshold: int,
) -> Decision | None:
    if blocked and (
        (row["email"] and blocklist_email_key(row["email"]) in blocked)
        or (
            row["address1"]
            and blocklist_address_key(address1=row["address1"], zip=row["zip"], country=row["country"]) in blocked
        )
    ):
        return Decision("blacklist")
    if not row["address1"].strip():
        return Decision("mark_enrichable") if campaign.address_enrichment else Decision("skip", SkipReason.NO_ADDRESS)
    if approve is not None:
        errors = approve({f: row[f] for f in APPROVAL_FIELDS})
        if errors:
            return Decision("skip", SkipReason.PRINTER_APPROVAL_FAILED, errors)
    if threshold and holdout_bucket(seed=seed, natural_key=row["natural_key"]) < threshold:
        return Decision("hold_out")
    return None


def _apply(decisions: dict[int, Decision], actor: Actor, result: QualifyResult) -> None:
    groups: defaultdict[tuple[str, str], list[int]] = defaultdict(list)
    for pk, decision in decisions.items():
        groups[(decision.method, decision.skip_reason)].append(pk)
    for (method, reason), ids in groups.items():
        moved = _move(ids, method, actor, reason)
        result.moved[f"Skipped:{reason}" if reason else _TARGETS[method]] += len(moved)
        if reason == SkipReason.PRINTER_APPROVAL_FAILED and moved:
            rows = list(CampaignRecipient.objects.filter(pk__in=moved).only("id", "json"))
            for r in rows:
                r.json = {**r.json, APPROVAL_ERRORS: decisions[r.pk].approval_errors}
            CampaignRecipient.objects.bulk_update(rows, ["json"], batch_size=500)


_TARGETS = {
    "blacklist": str(Status.BLACKLISTED),
    "mark_enrichable": str(Status.ADDRESS_ENRICHABLE),
    "hold_out": str(Status.HOLDOUT),
    "stage_proofing": str(Status.PROOFING_STAGED),
}
