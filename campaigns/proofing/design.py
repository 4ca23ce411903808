"""A campaign's design and its approval gate.

The design is the campaign's ``ProofTemplate`` (or the built-in one) at its
current version, for the campaign's card size: :func:`campaign_design` turns
it into the :class:`~campaigns.proofing.base.ProofDesign` a renderer draws,
whose ``version`` string ("t3.v2.4x6", "builtin.v1.6x9") is stamped on every
proof and on every approval.

The gate (Stannp's sample → approve → book, Poplar's proof approval): until a
person approves a campaign's sample proofs for the current design version,
the proofing stage makes no more than ``SAMPLE_SIZE`` proofs and the mailing
stage mails nothing.  An approval names who, when and which version; a change
of template, of its design or of the card size makes a new version, which no
approval covers: the old one is withdrawn (recorded with the reason), the
proofs made from the old version are made again, and a person approves anew.
"""

from __future__ import annotations

from typing import Any

from django.db import models, transaction
from django.utils import timezone

from campaigns.models import Campaign, CampaignRecipient, ErrorMessages, ProofApproval, ProofTemplate
from campaigns.proofing.base import ProofDesign

SAMPLE_SIZE = 3
# The built-in design's version: bump it when campaigns/proofing/artwork.py
# or the defaults below change what a proof looks like.
BUILTIN_VERSION = 1


class ApprovalError(Exception):
    """The samples cannot be approved (none made yet, or made from an older design)."""


def _field_default(name: str) -> str:
    field = ProofTemplate._meta.get_field(name)
    assert isinstance(field, models.Field)
    return str(field.get_default())


def design_words(version: str) -> str:
    """A design version as ops read it ("t3.v2.4x6.code" → "template #3,
    version 2, 4x6 card with a discount code"); anything else as it is."""
    parts = version.split(".")
    if len(parts) not in (3, 4) or not parts[1].startswith("v") or parts[3:] not in ([], ["code"]):
        return version
    source, edition, size = parts[0], parts[1][1:], parts[2]
    if source == "builtin":
        who = "the built-in design"
    elif source.startswith("t") and source[1:].isdigit():
        who = f"template #{source[1:]}"
    else:
        return version
    code = " with a discount code" if parts[3:] == ["code"] else ""
    return f"{who}, version {edition}, {size} card{code}"


def campaign_design(campaign: Campaign) -> ProofDesign:
    """The design a proof of ``campaign`` is made from, right now.  Its version
    names everything that changes the picture: the template and its version,
    the card size, and whether the card carries a discount code."""
    template = campaign.proof_template
    variant = f"{campaign.size}.code" if campaign.discount_enabled else campaign.size
    if template is None:
        return ProofDesign(
            version=f"builtin.v{BUILTIN_VERSION}.{variant}",
            name="Built-in design",
            headline=_field_default("headline"),
            subline=_field_default("subline"),
            message=_field_default("message"),
            offer=_field_default("offer") if campaign.discount_enabled else "",
            accent_color=_field_default("accent_color"),
            text_color=_field_default("text_color"),
        )
    return ProofDesign(
        version=f"t{template.pk}.v{template.version}.{variant}",
        name=template.name,
        headline=template.headline,
        subline=template.subline,
        message=template.message,
        offer=template.offer if campaign.discount_enabled else "",
        accent_color=template.accent_color,
        text_color=template.text_color,
        front_background=template.front_background.name or "",
        back_background=template.back_background.name or "",
        pixelixe_front_uid=template.pixelixe_front_uid,
        pixelixe_back_uid=template.pixelixe_back_uid,
    )


def sample_room(campaign: Campaign, version: str) -> int:
    """How many more rows the proofing stage may proof before a person
    approves ``version``: the samples less those made, in flight, or failed.
    A failed proof counts: a broken design (a cut-short picture) failed 3
    rows, took 3 more, and so on until the whole audience was in Error before
    anyone had approved anything.  Retrying the failed rows (after fixing the
    design) makes room again."""
    status = CampaignRecipient.Status
    rows = campaign.recipients
    made = rows.filter(proof_version=version).count()
    in_flight = rows.filter(status=status.PROOFING).count()
    failed = rows.filter(status=status.ERROR, error_message__in=SAMPLE_FAILURES).count()
    return max(0, SAMPLE_SIZE - made - in_flight - failed)


# The proofing stage's own failures (a render or a discount code), not
# billing's nor the queue's, which say nothing about the design.
SAMPLE_FAILURES = (
    ErrorMessages.COULD_NOT_GENERATE_CREATIVE,
    ErrorMessages.FAILED_TO_MAKE_PROOF,
    ErrorMessages.FAILED_TO_APPLY_DISCOUNT_CODE,
)


def campaign_approval(campaign: Campaign, *, version: str | None = None) -> ProofApproval | None:
    """The approval covering the campaign's current design, if any."""
    version = version or campaign_design(campaign).version
    return (
        ProofApproval.objects.filter(campaign=campaign, design_version=version, withdrawn_at__isnull=True)
        .order_by("-approved_at")
        .first()
    )


def campaign_samples(campaign: Campaign, *, version: str | None = None) -> list[CampaignRecipient]:
    """The sample proofs a person approves: the first ``SAMPLE_SIZE`` recipients
    proofed from the current design."""
    version = version or campaign_design(campaign).version
    rows = campaign.recipients.filter(proof_version=version).order_by("id")
    return list(rows[:SAMPLE_SIZE])


def campaign_approve_proofs(*, campaign: Campaign, user: Any) -> ProofApproval:
    """Record that ``user`` approved the campaign's current samples.  Approving
    twice is one approval (the first is returned)."""
    design = campaign_design(campaign)
    with transaction.atomic():
        Campaign.objects.select_for_update().filter(pk=campaign.pk).first()
        existing = campaign_approval(campaign, version=design.version)
        if existing is not None:
            return existing
        samples = campaign_samples(campaign, version=design.version)
        if not samples:
            raise ApprovalError(
                "There are no sample proofs of the current design yet: run the campaign to make them, then approve."
            )
        approval = ProofApproval.objects.create(
            campaign=campaign,
            template=campaign.proof_template,
            design_version=design.version,
            sample_recipient_ids=[r.pk for r in samples],
            approved_by=user if getattr(user, "pk", None) else None,
        )
    return approval


def campaign_withdraw_stale_approvals(*, campaign: Campaign, reason: str) -> int:
    """Mark the campaign's approvals of an older design withdrawn (the audit
    trail; validity itself already follows the version).  Returns how many."""
    version = campaign_design(campaign).version
    return (
        ProofApproval.objects.filter(campaign=campaign, withdrawn_at__isnull=True)
        .exclude(design_version=version)
        .update(withdrawn_at=timezone.now(), withdrawn_reason=reason[:200])
    )


def template_withdraw_stale_approvals(*, template: ProofTemplate, reason: str) -> int:
    """After a design change: withdraw the approvals of every campaign using it."""
    return sum(
        campaign_withdraw_stale_approvals(campaign=c, reason=reason)
        for c in Campaign.objects.filter(proof_template=template)
    )
