from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html_join

from campaigns.admin_import import CampaignImportAdminMixin
from campaigns.models import BlocklistEntry, Campaign, CampaignRecipient, Organization, RecipientTransition
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
    list_display = ("name", "billing_ready", "billing_customer_id", "subscription_active", "recipient_cap")
    list_filter = ("subscription_active",)
    search_fields = ("name", "billing_customer_id")
    inlines = (BlocklistInline,)

    @admin.display(boolean=True, description="Billing ready")
    def billing_ready(self, obj: Organization) -> bool:
        return obj.billing_ready


@admin.register(BlocklistEntry)
class BlocklistEntryAdmin(admin.ModelAdmin):
    list_display = ("organization", "address1", "zip", "country", "email", "reason", "created")
    list_filter = ("organization",)
    search_fields = ("address1", "zip", "email")
    list_select_related = ("organization",)


@admin.register(Campaign)
class CampaignAdmin(CampaignImportAdminMixin, admin.ModelAdmin):
    list_display = ("name", "organization", "printer", "size", "mail_date", "holdout_percent", "created")
    list_filter = ("printer", "address_enrichment", "organization")
    search_fields = ("name", "organization__name")
    list_select_related = ("organization",)
    readonly_fields = ("holdout_seed", "status_counts", "created", "updated")
    fieldsets = (
        (None, {"fields": ("organization", "name", "printer", "size", "mail_date")}),
        ("Audience", {"fields": ("holdout_percent", "holdout_seed", "address_enrichment")}),
        (
            "Creative and discount",
            {"fields": ("front_template", "back_template", "discount_enabled", "discount_prefix", "discount_value")},
        ),
        ("Progress", {"fields": ("status_counts", "created", "updated")}),
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
    "discount_code",
    "created",
    "updated",
)


@admin.register(CampaignRecipient)
class CampaignRecipientAdmin(HistoryFSMAdminMixin, BigTableAdminMixin):
    fsm_service = recipient_transition
    fsm_service_object_kwarg = "recipient"
    fsm_button_services = {
        "revalidate": lambda obj, actor: recipients_revalidate(
            queryset=CampaignRecipient.objects.filter(pk=obj.pk), actor=actor
        ),
    }

    list_display = ("__str__", "status", "why", "city", "zip", "country", "campaign", "updated")
    list_filter = ("status", "skip_reason", ErrorFilter, "campaign__printer", "campaign")
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
    readonly_fields = ("status", "why", "skip_reason", "error_message", "natural_key", *PIPELINE_FIELDS)
    fieldsets = (
        (None, {"fields": ("campaign", "status", "why", "skip_reason", "error_message")}),
        ("Person", {"fields": ("first_name", "last_name", "company", "email", "external_id", "natural_key")}),
        ("Address", {"fields": ("address1", "address2", "city", "state", "zip", "country")}),
        ("Data", {"fields": ("json",)}),
        ("Pipeline", {"classes": ("collapse",), "fields": PIPELINE_FIELDS}),
    )
    inlines = (RecipientTransitionInline,)
    actions = (
        _bulk_action("retry_proofing", "Retry from proofing"),
        _bulk_action("retry_sending", "Retry sending (keeps the proof)", only={"proof_url": ""}),
        "revalidate",
        _bulk_action("archive", "Archive (exclude from campaign)"),
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


@admin.register(RecipientTransition)
class RecipientTransitionAdmin(ReadOnlyHistoryAdmin):
    list_display = ("created", "recipient", *ReadOnlyHistoryAdmin.list_display[1:])
    list_select_related = ["recipient", "acting_user"]
    search_fields = ("=recipient__id", "reason")
    raw_id_fields = ("recipient",)
