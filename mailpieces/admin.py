from __future__ import annotations

import contextlib
import json
from typing import Any, ClassVar

from django.contrib import admin, messages
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from common.admin import BigTableAdminMixin, HistoryFSMAdminMixin, ReadOnlyHistoryAdmin, ReadOnlyHistoryInline
from common.fsm import Actor
from common.models import is_row_id
from common.permissions import can_retry
from mailpieces.models import InboundWebhook, Mailpiece, MailpieceEvent, MailpieceTransition
from mailpieces.services import mailpiece_transition
from mailpieces.webhooks.reprocess import webhooks_reprocess_ids
from printers.kinds import PrinterKind

# Shown of a stored body: enough to read any real delivery, not a megabyte page.
BODY_SHOWN = 20_000


class MailpieceTransitionInline(ReadOnlyHistoryInline):
    model = MailpieceTransition


class MailpieceEventInline(admin.TabularInline):
    """Every report the printer sent about the piece, applied or not, and why."""

    model = MailpieceEvent
    fk_name = "mailpiece"
    fields: ClassVar[tuple[str, ...]] = ("occurred_at", "vendor_status", "status", "outcome", "note", "delivery")
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False
    ordering = ("-occurred_at", "-id")
    verbose_name_plural = "Printer reports (newest first)"

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    @admin.display(description="Delivery")
    def delivery(self, obj: MailpieceEvent) -> str:
        if obj.inbox_id is None:
            return "a lookup at the printer"
        url = reverse("admin:mailpieces_inboundwebhook_change", args=[obj.inbox_id])
        return format_html('<a href="{}">webhook {}</a>', url, obj.inbox_id)


@admin.register(Mailpiece)
class MailpieceAdmin(HistoryFSMAdminMixin, BigTableAdminMixin):
    fsm_service = mailpiece_transition
    fsm_service_object_kwarg = "mailpiece"
    # A piece moves only on what its printer reports (webhooks, lookups):
    # no hand-pressed status buttons.
    fsm_buttons: dict[str, Any] = {}

    list_display = ("__str__", "recipient", "printer", "status", "last_vendor_status", "status_at", "updated")
    list_filter = ("status", "printer")
    search_fields = ("=printer_id",)
    search_help_text = "Search by: the printer's id of the piece (whole), or the recipient's id (a number)."
    list_select_related = ("recipient",)
    inlines = (MailpieceEventInline, MailpieceTransitionInline)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # pieces come from the mailing stage only

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        # A view page: every field read-only, no status button, no Save.  A
        # piece is made by the mailing stage and moved by its printer's
        # reports; a recipient or printer changed by hand broke the one-live-
        # piece rule (a 500) or moved a delivered piece onto a Pending
        # recipient without a history row.
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Mailpiece], search_term: str
    ) -> tuple[QuerySet[Mailpiece], bool]:
        # Whole values on indexes (printer_id, recipient): "contains" on five
        # columns and a join read every piece.  Names are searched in the
        # recipient list.
        term = search_term.strip()
        if not term:
            return queryset, False
        found = Q(printer_id=term)
        if is_row_id(term):
            found |= Q(recipient_id=int(term))
        return queryset.filter(found), False


@admin.register(MailpieceTransition)
class MailpieceTransitionAdmin(ReadOnlyHistoryAdmin):
    list_display = ("created", "mailpiece", *ReadOnlyHistoryAdmin.list_display[1:])
    list_select_related = ["mailpiece", "acting_user"]
    search_fields = ("=mailpiece__id", "mailpiece__printer_id", "reason")
    raw_id_fields = ("mailpiece",)


class ReadOnlyAdmin(BigTableAdminMixin):
    """Records of what printers said: viewable and searchable, never edited or deleted."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class EventInline(MailpieceEventInline):
    fk_name = "inbox"
    fields = ("printer_id", "mailpiece", "occurred_at", "vendor_status", "status", "outcome", "note")
    readonly_fields = fields
    verbose_name_plural = "Reports read from this delivery"


@admin.register(InboundWebhook)
class InboundWebhookAdmin(ReadOnlyAdmin):
    list_display = ("received_at", "printer", "event_id", "state", "events_count", "short_error")
    # A date filter, not date_hierarchy: the hierarchy's links are a DISTINCT
    # over every delivery's date on each page view (0.7 s at 100k rows).
    list_filter = ("state", "printer", ("received_at", admin.DateFieldListFilter))
    search_fields = ("=event_id",)
    fields = (
        "printer",
        "event_id",
        "received_at",
        "state",
        "processed_at",
        "events_count",
        "attempts",
        "error",
        "content_type",
        "pretty_headers",
        "pretty_body",
    )
    readonly_fields = fields
    inlines = (EventInline,)
    actions = ("reread",)

    def has_reread_permission(self, request: HttpRequest) -> bool:
        """Superusers, and staff who may retry recipients (the Ops group)."""
        user: Any = request.user
        return bool(user.is_active and user.is_superuser) or can_retry(user)

    @admin.action(description="Re-read selected deliveries (after a parsing or mapping fix)", permissions=["reread"])
    def reread(self, request: HttpRequest, queryset: QuerySet[InboundWebhook]) -> None:
        selected = list(queryset.values_list("pk", flat=True))
        report = webhooks_reprocess_ids(ids=selected, actor=Actor("admin", request.user))
        pending = len(selected) - report.rows
        note = f"; {pending} still waiting for the normal run, left alone" if pending else ""
        self.message_user(
            request,
            f"Re-read: {report}{note}.",
            level=messages.SUCCESS if report.rows else messages.WARNING,
        )

    def get_queryset(self, request: HttpRequest) -> QuerySet[InboundWebhook]:
        # The list never loads bodies.
        qs = super().get_queryset(request)
        match = request.resolver_match
        return qs if match and (match.url_name or "").endswith("change") else qs.defer("body")

    @admin.display(description="Error")
    def short_error(self, obj: InboundWebhook) -> str:
        return obj.error[:120]

    @admin.display(description="Headers")
    def pretty_headers(self, obj: InboundWebhook) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.headers, indent=2, ensure_ascii=False))

    @admin.display(description="Body (as received)")
    def pretty_body(self, obj: InboundWebhook) -> str:
        raw = bytes(obj.body)
        text = raw.decode("utf-8", errors="replace")
        with contextlib.suppress(ValueError, RecursionError):
            text = json.dumps(json.loads(raw), indent=2, ensure_ascii=False)
        cut = f"\n… {len(text) - BODY_SHOWN} more characters" if len(text) > BODY_SHOWN else ""
        return format_html("<pre>{}{}</pre>", text[:BODY_SHOWN], cut)


@admin.register(MailpieceEvent)
class MailpieceEventAdmin(ReadOnlyAdmin):
    list_display = ("created", "printer", "printer_id", "vendor_status", "status", "outcome", "note", "mailpiece")
    list_filter = ("outcome", "printer", "status")
    search_fields = ("=printer_id", "=event_key")
    search_help_text = (
        "Search by: the printer's id of the piece (its reports, those waiting for it and those that could not "
        "be read), or a report's own id; whole values, exactly as the printer writes them."
    )
    list_select_related = ("mailpiece",)
    # Newest first, on the primary key: the model's (occurred_at, id) has no
    # index and sorted every report on each page view.
    ordering = ("-id",)
    raw_id_fields = ("mailpiece", "inbox")

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[MailpieceEvent], search_term: str
    ) -> tuple[QuerySet[MailpieceEvent], bool]:
        # Each term on an index: no index leads with printer_id or event_key
        # alone, so Django's "printer_id = x OR event_key = x" read every
        # report.  A printer id goes through the piece (its indexed
        # printer_id, then the reports' piece index) and, for reports with no
        # piece (waiting for it, or unreadable), their partial indexes; a
        # report id through the unique (printer, event_key), one probe per
        # printer kind.  Whole values, exactly as the printer writes them.
        term = search_term.strip()
        if not term:
            return queryset, False
        kinds = list(PrinterKind.values)
        # At most one piece per printer kind has the id (a unique constraint):
        # read first, as a list, so PostgreSQL can OR the index scans (a
        # subquery would be a filter over every report).
        pieces = list(Mailpiece.objects.filter(printer_id=term).values_list("pk", flat=True)[: len(kinds)])
        no_piece = [MailpieceEvent.Outcome.WAITING, MailpieceEvent.Outcome.PROBLEM]  # each on its partial index
        found = Q(printer__in=kinds, event_key=term)
        for outcome in no_piece:
            found |= Q(printer__in=kinds, printer_id=term, outcome=outcome)
        if pieces:
            found |= Q(mailpiece_id__in=pieces)
        return queryset.filter(found), False
