"""Admin pieces for proofs: the images, the sample review and approval.

- ``RecipientProofAdminMixin`` (CampaignRecipientAdmin): a staff-only view
  serving a recipient's proof side (``<id>/proof/<front|back>/``, ``?thumb=1``
  for a thumbnail) and a read-only "Proof" field with both thumbnails.
- ``CampaignProofAdminMixin`` (CampaignAdmin): the "Sample proofs" page
  (``<id>/proofs/``), the samples side by side with an Approve button, a
  read-only "Proof approval" field.  (The run / pause / resume actions are
  CampaignAdmin's own.)
"""

from __future__ import annotations

from typing import Any, cast

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join

from campaigns.models import Campaign, CampaignRecipient, proof_outdated
from campaigns.pipeline.doorbell import campaign_ring_on_commit
from campaigns.proofing.design import (
    SAMPLE_SIZE,
    ApprovalError,
    campaign_approval,
    campaign_approve_proofs,
    campaign_design,
    campaign_samples,
    design_words,
)
from campaigns.proofing.images import proof_bytes

SIDES = {"front": "proof_url", "back": "proof_back_url"}


def proof_image_url(recipient_id: int, side: str, *, thumb: bool = False) -> str:
    url = reverse("admin:campaigns_campaignrecipient_proof", args=[recipient_id, side])
    return f"{url}?thumb=1" if thumb else url


def proof_thumbnails(r: CampaignRecipient, *, width: int = 240) -> str:
    """Both sides as thumbnails, each a link to the full-size image."""
    sides = [(side, getattr(r, attr)) for side, attr in SIDES.items() if getattr(r, attr)]
    if not sides:
        return "No proof image yet." if not r.proof_version else "Made without an image (fast mode)."
    images = format_html_join(
        " ",
        '<a href="{}" target="_blank" title="{} at full size"><img src="{}" alt="{} of the proof" width="{}" '
        'style="border:1px solid #ccc; margin:2px"></a>',
        (
            (proof_image_url(r.pk, side), side, proof_image_url(r.pk, side, thumb=True), side, width)
            for side, _ in sides
        ),
    )
    if proof_outdated(r):
        note = "Outdated: made before the name or address was edited; it is made again before the card is mailed."
        return format_html("<p><strong>{}</strong></p>{}", note, images)
    return images


class RecipientProofAdminMixin:
    def get_urls(self) -> list[URLPattern]:
        model_admin: Any = self
        view = model_admin.admin_site.admin_view(self.proof_view)
        ours = [path("<path:object_id>/proof/<str:side>/", view, name="campaigns_campaignrecipient_proof")]
        return ours + super().get_urls()  # type: ignore[misc]

    def proof_view(self, request: HttpRequest, object_id: str, side: str) -> HttpResponse:
        model_admin: Any = self
        recipient = model_admin.get_object(request, unquote(object_id))
        if recipient is None or side not in SIDES:
            raise Http404("No such proof.")
        if not model_admin.has_view_permission(request, recipient):
            raise PermissionDenied
        try:
            data, content_type = proof_bytes(getattr(recipient, SIDES[side]), thumb=bool(request.GET.get("thumb")))
        except FileNotFoundError:
            raise Http404("This recipient has no proof image for that side.") from None
        response = HttpResponse(data, content_type=content_type)
        response["Cache-Control"] = "private, max-age=300"
        return response

    @admin.display(description="Proof")
    def proof(self, obj: CampaignRecipient) -> str:
        return proof_thumbnails(obj)


class CampaignProofAdminMixin:
    def get_urls(self) -> list[URLPattern]:
        model_admin: Any = self
        wrap = model_admin.admin_site.admin_view
        ours = [path("<path:object_id>/proofs/", wrap(self.proofs_view), name="campaigns_campaign_proofs")]
        return ours + super().get_urls()  # type: ignore[misc]

    def _proof_campaign(self, request: HttpRequest, object_id: str, *, change: bool) -> Campaign:
        model_admin: Any = self
        campaign = model_admin.get_object(request, unquote(object_id))
        if campaign is None:
            raise Http404(f"No campaign with id {object_id!r}.")
        allowed = model_admin.has_change_permission if change else model_admin.has_view_permission
        if not allowed(request, campaign):
            raise PermissionDenied
        return cast(Campaign, campaign)

    def proofs_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        model_admin: Any = self
        campaign = self._proof_campaign(request, object_id, change=request.method == "POST")
        here = reverse("admin:campaigns_campaign_proofs", args=[campaign.pk])
        if request.method == "POST":
            try:
                approval = campaign_approve_proofs(campaign=campaign, user=request.user)
            except ApprovalError as exc:
                model_admin.message_user(request, str(exc), level=messages.ERROR)
            else:
                campaign_ring_on_commit(campaign.pk)
                model_admin.message_user(
                    request,
                    f"Approved by {approval.approved_by or 'the system'}: the rest of “{campaign}” is proofed next.",
                    level=messages.SUCCESS,
                )
            return HttpResponseRedirect(here)
        design = campaign_design(campaign)
        context = {
            **model_admin.admin_site.each_context(request),
            "opts": Campaign._meta,
            "original": campaign,
            "title": f"Sample proofs of {campaign}",
            "change_url": reverse("admin:campaigns_campaign_change", args=[campaign.pk]),
            "design": design,
            "samples": [
                (r, proof_thumbnails(r, width=420)) for r in campaign_samples(campaign, version=design.version)
            ],
            "sample_size": SAMPLE_SIZE,
            "approval": campaign_approval(campaign, version=design.version),
            "history": [
                (a, design_words(a.design_version)) for a in campaign.approvals.select_related("approved_by")[:10]
            ],
            "design_words": design_words(design.version),
            "can_approve": model_admin.has_change_permission(request, campaign),
        }
        return TemplateResponse(request, "admin/campaigns/campaign/proofs.html", context)

    @admin.display(description="Proof approval")
    def proof_approval(self, obj: Campaign) -> str:
        if obj.pk is None:
            return "-"
        design = campaign_design(obj)
        approval = campaign_approval(obj, version=design.version)
        link = reverse("admin:campaigns_campaign_proofs", args=[obj.pk])
        if approval is not None:
            who = approval.approved_by or "the system"
            return format_html(
                "Approved by {} on {} for “{}” ({}). <a href='{}'>See the samples</a>",
                who,
                f"{approval.approved_at:%Y-%m-%d %H:%M}",
                design.name,
                design_words(design.version),
                link,
            )
        made = len(campaign_samples(obj, version=design.version))
        if made:
            return format_html(
                "<strong>Waiting for approval</strong>: {} sample proof(s) of “{}” ({}) are ready. "
                "<a href='{}'>Review and approve them</a>. Nothing more is proofed or mailed until then.",
                made,
                design.name,
                design_words(design.version),
                link,
            )
        return format_html(
            "Not approved yet. The first {} recipients staged for proofing become the samples to review "
            "(<a href='{}'>sample page</a>).",
            SAMPLE_SIZE,
            link,
        )
