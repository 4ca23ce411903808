from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from campaigns.admin_import import CampaignImportAdminMixin
from campaigns.admin_proofs import CampaignProofAdminMixin, RecipientProofAdminMixin
from campaigns.billing.service import organizations_billing_check
from campaigns.mailing.retry import recipients_retry_sending
from campaigns.models import (
    MERGE_FIELDS,
    BlocklistEntry,
    Campaign,
    CampaignRecipient,
    Organization,
    ProofApproval,
    ProofTemplate,
    RecipientTransition,
)
from campaigns.proofing.design import campaign_withdraw_stale_approvals, template_withdraw_stale_approvals
from campaigns.proofing.retry import recipients_retry_proofing
from campaigns.revalidation import recipients_revalidate
from campaigns.services import recipient_transition, recipients_bulk_transition
from common.admin import BigTableAdminMixin, HistoryFSMAdminMixin, ReadOnlyHistoryAdmin, ReadOnlyHistoryInline
from common.fsm import Actor


class BlocklistInline(admin.TabularInline):
    model = BlocklistEntry
    fields = ("address1", "zip", "country", "email", "reason")
    extra = 0


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "billing_customer_id",
        "subscription_active",
        "billing_subscription_item_id",
        "recipient_cap",
    )
    list_filter = ("subscription_active",)
    search_fields = ("name", "billing_customer_id")
    readonly_fields = ("billing_check",)
    fieldsets = (
        (None, {"fields": ("name", "recipient_cap")}),
        (
            "Billing",
            {
                "fields": (
                    "billing_check",
                    "billing_customer_id",
                    "subscription_active",
                    "billing_subscription_item_id",
                    "billing_price_id",
                ),
                "description": "Nothing is proofed or mailed for an organization whose billing is not ready.",
            },
        ),
    )
    inlines = (BlocklistInline,)

    @admin.display(description="Billing check (as the pipeline sees it)")
    def billing_check(self, obj: Organization) -> str:
        if obj.pk is None:
            return "Save the organization first."
        check = organizations_billing_check([obj.pk])[obj.pk]
        return "Ready to bill." if check.ready else f"Not ready: {check.problem}."


@admin.register(ProofTemplate)
class ProofTemplateAdmin(admin.ModelAdmin):
    list_display = ("name", "version", "updated")
    search_fields = ("name",)
    readonly_fields = ("version", "merge_fields")
    fieldsets = (
        (None, {"fields": ("name", "version")}),
        ("Front", {"fields": ("front_background", "headline", "subline", "text_color")}),
        ("Back", {"fields": ("back_background", "message", "offer", "accent_color", "merge_fields")}),
        (
            "Pixelixe (only with the Pixelixe backend)",
            {"classes": ("collapse",), "fields": ("pixelixe_front_uid", "pixelixe_back_uid")},
        ),
    )

    @admin.display(description="Merge fields you can use")
    def merge_fields(self, obj: ProofTemplate) -> str:
        return format_html_join(", ", "<code>{{{}}}</code> ({})", MERGE_FIELDS.items())

    def save_model(self, request: HttpRequest, obj: ProofTemplate, form: Any, change: bool) -> None:
        before = obj.version
        super().save_model(request, obj, form, change)
        if change and obj.version != before:
            n = template_withdraw_stale_approvals(template=obj, reason=f"design changed to version {obj.version}")
            if n:
                self.message_user(
                    request,
                    f"The design changed: {n} campaign approval(s) withdrawn. Their proofs are made again and "
                    "need a new approval before anything is mailed.",
                    level=messages.WARNING,
                )


@admin.register(ProofApproval)
class ProofApprovalAdmin(admin.ModelAdmin):
    list_display = ("campaign", "design_version", "approved_by", "approved_at", "withdrawn_at", "withdrawn_reason")
    list_select_related = ("campaign", "approved_by")
    list_filter = ("campaign",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(BlocklistEntry)
class BlocklistEntryAdmin(admin.ModelAdmin):
    list_display = ("organization", "address1", "zip", "country", "email", "reason", "created")
    list_filter = ("organization",)
    search_fields = ("address1", "zip", "email")
    list_select_related = ("organization",)


@admin.register(Campaign)
class CampaignAdmin(CampaignImportAdminMixin, CampaignProofAdminMixin, admin.ModelAdmin):
    list_display = ("name", "organization", "printer", "size", "mail_date", "paused", "created")
    list_filter = ("paused", "printer", "address_enrichment", "organization")
    search_fields = ("name", "organization__name")
    list_select_related = ("organization",)
    readonly_fields = ("holdout_seed", "status_counts", "proof_approval", "created", "updated")
    actions = ("run_now", "pause", "resume")
    fieldsets = (
        (None, {"fields": ("organization", "name", "printer", "size", "mail_date", "paused")}),
        ("Audience", {"fields": ("holdout_percent", "holdout_seed", "address_enrichment")}),
        (
            "Design and discount",
            {"fields": ("proof_template", "proof_approval", "discount_enabled", "discount_prefix", "discount_value")},
        ),
        ("Progress", {"fields": ("status_counts", "created", "updated")}),
    )

    def save_model(self, request: HttpRequest, obj: Campaign, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        design_changed = change and {"proof_template", "size", "discount_enabled"} & set(form.changed_data)
        if design_changed and campaign_withdraw_stale_approvals(
            campaign=obj, reason="the campaign's design, card size or discount changed"
        ):
            self.message_user(
                request,
                "The design changed: the proof approval is withdrawn. The proofs are made again and need a new "
                "approval before anything is mailed.",
                level=messages.WARNING,
            )

    @admin.display(description="Recipients by status")
    def status_counts(self, obj: Campaign) -> str:
        if obj.pk is None:
            return "-"
        rows = obj.recipients.values("status").annotate(n=Count("id")).order_by("status")
        changelist = reverse("admin:campaigns_campaignrecipient_changelist")
        # Each count links to those recipients: from "Error: 4000" to the list in one click.
        links = (
            (
                f"{changelist}?{urlencode({'campaign__id__exact': obj.pk, 'status__exact': r['status']})}",
                r["status"],
                r["n"],
            )
            for r in rows
        )
        return format_html_join(", ", '<a href="{}">{}: {}</a>', links) or "no recipients"

    def has_delete_permission(self, request: HttpRequest, obj: Campaign | None = None) -> bool:
        # A campaign with an audience carries its history: archive recipients instead.
        if obj is not None and obj.recipients.exists():
            return False
        return super().has_delete_permission(request, obj)


class ErrorFilter(admin.SimpleListFilter):
    title = "problem"
    parameter_name = "problem"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("error", "Has an error message"), ("skipped", "Has a skip reason")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[CampaignRecipient]) -> QuerySet[CampaignRecipient]:
        if self.value() == "error":
            return queryset.exclude(error_message="")
        if self.value() == "skipped":
            return queryset.exclude(skip_reason="")
        return queryset


class RecipientTransitionInline(ReadOnlyHistoryInline):
    model = RecipientTransition


def _bulk_action(method: str, description: str, *, only: dict[str, Any] | None = None) -> Any:
    """A changelist action that moves every eligible selected recipient along
    ``method`` through the bulk service, and says how many it moved and left."""

    @admin.action(description=description, permissions=["change"])
    def action(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        selected = queryset.count()
        eligible = queryset.exclude(**only) if only else queryset
        moved = recipients_bulk_transition(
            queryset=eligible, method=method, actor=Actor("admin", request.user), reason=description
        )
        left = selected - len(moved)
        level = messages.SUCCESS if moved else messages.WARNING
        note = f" {left} left as they were (not eligible)." if left else ""
        modeladmin.message_user(request, f"{description}: {len(moved)} recipient(s).{note}", level=level)

    action.__name__ = f"action_{method}"
    return action


# Set by the stages, never typed in: shown read-only, folded away.
PIPELINE_FIELDS = (
    "claim_token",
    "lease_until",
    "attempt",
    "submission_gen",
    "idempotency_key",
    "proof_url",
    "proof_back_url",
    "proof_version",
    "created",
    "updated",
)


@admin.register(CampaignRecipient)
class CampaignRecipientAdmin(RecipientProofAdminMixin, HistoryFSMAdminMixin, BigTableAdminMixin):
    fsm_service = recipient_transition
    fsm_service_object_kwarg = "recipient"
    fsm_button_services = {
        "revalidate": lambda obj, actor: recipients_revalidate(
            queryset=CampaignRecipient.objects.filter(pk=obj.pk), actor=actor
        ),
        "retry_proofing": lambda obj, actor: recipients_retry_proofing(
            queryset=CampaignRecipient.objects.filter(pk=obj.pk), actor=actor
        ),
        "retry_sending": lambda obj, actor: recipients_retry_sending(
            queryset=CampaignRecipient.objects.filter(pk=obj.pk), actor=actor
        ),
    }

    list_display = ("__str__", "status", "why", "city", "zip", "country", "campaign", "updated")
    list_filter = ("status", "skip_reason", ErrorFilter, "campaign__printer", "mailpieces__status", "campaign")
    search_fields = (
        "first_name",
        "last_name",
        "email",
        "address1",
        "zip",
        "external_id",
        "natural_key",
        "mailpieces__printer_id",
    )
    list_select_related = ("campaign",)
    raw_id_fields = ("campaign",)
    readonly_fields = (
        "status",
        "why",
        "skip_reason",
        "error_message",
        "error_detail",
        "proof",
        "discount_code",
        "natural_key",
        "mail",
        *PIPELINE_FIELDS,
    )
    fieldsets = (
        (None, {"fields": ("campaign", "status", "why", "skip_reason", "error_message", "error_detail")}),
        ("Proof", {"fields": ("proof", "discount_code")}),
        ("Mail", {"fields": ("mail",)}),
        ("Person", {"fields": ("first_name", "last_name", "company", "email", "external_id", "natural_key")}),
        ("Address", {"fields": ("address1", "address2", "city", "state", "zip", "country")}),
        ("Data", {"fields": ("json",)}),
        ("Pipeline", {"classes": ("collapse",), "fields": PIPELINE_FIELDS}),
    )
    inlines = (RecipientTransitionInline,)
    actions = (
        "retry_proofing",
        "retry_sending",
        "revalidate",
        _bulk_action("archive", "Archive (exclude from campaign)"),
    )

    @admin.action(
        description="Retry from proofing (proofing errors; keeps a valid discount code)", permissions=["change"]
    )
    def retry_proofing(self, request: HttpRequest, queryset: QuerySet[CampaignRecipient]) -> None:
        report = recipients_retry_proofing(queryset=queryset, actor=Actor("admin", request.user))
        self.message_user(
            request,
            f"Retry from proofing: {report.summary()}.",
            level=messages.SUCCESS if report.retried else messages.WARNING,
        )

    @admin.action(description="Retry sending (mailing errors; keeps the proof and code)", permissions=["change"])
    def retry_sending(self, request: HttpRequest, queryset: QuerySet[CampaignRecipient]) -> None:
        report = recipients_retry_sending(queryset=queryset, actor=Actor("admin", request.user))
        self.message_user(
            request,
            f"Retry sending: {report.summary()}.",
            level=messages.SUCCESS if report.retried else messages.WARNING,
        )

    @admin.action(
        description="Re-validate skipped/blacklisted (check the data again, then qualify)", permissions=["change"]
    )
    def revalidate(self, request: HttpRequest, queryset: QuerySet[CampaignRecipient]) -> None:
        selected = queryset.count()
        outcome = recipients_revalidate(queryset=queryset, actor=Actor("admin", request.user))
        moved = sum(outcome.values())
        summary = ", ".join(f"{status}: {n}" for status, n in sorted(outcome.items())) or "nothing moved"
        left = f" {selected - moved} left as they were (not eligible)." if selected - moved else ""
        self.message_user(
            request,
            f"Re-validated {moved} recipient(s): {summary}.{left}",
            level=messages.SUCCESS if moved else messages.WARNING,
        )

    @admin.display(description="Why")
    def why(self, obj: CampaignRecipient) -> str:
        return obj.why

    @admin.display(description="Mailpieces")
    def mail(self, obj: CampaignRecipient) -> str:
        """Every piece mailed for the recipient, newest first, with the printer's
        latest word: a Returned, Cancelled or Error piece shows here even though
        the recipient stays Sent or Received."""
        pieces = list(obj.mailpieces.order_by("-created")[:5])
        if not pieces:
            return "None yet."
        rows = format_html_join(
            "",
            '<li><a href="{}">{} {}</a>: <strong>{}</strong>{}</li>',
            (
                (
                    reverse("admin:mailpieces_mailpiece_change", args=[p.pk]),
                    p.get_printer_display(),
                    p.printer_id or "(no printer id)",
                    p.get_status_display(),
                    f" — the printer said “{p.last_vendor_status}”" if p.last_vendor_status else "",
                )
                for p in pieces
            ),
        )
        return format_html("<ul>{}</ul>", rows)


@admin.register(RecipientTransition)
class RecipientTransitionAdmin(ReadOnlyHistoryAdmin):
    list_display = ("created", "recipient", *ReadOnlyHistoryAdmin.list_display[1:])
    list_select_related = ["recipient", "acting_user"]
    search_fields = ("=recipient__id", "reason")
    raw_id_fields = ("recipient",)
