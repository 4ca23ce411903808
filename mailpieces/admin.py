from __future__ import annotations

from django.contrib import admin

from common.admin import BigTableAdminMixin, HistoryFSMAdminMixin, ReadOnlyHistoryAdmin, ReadOnlyHistoryInline
from mailpieces.models import Mailpiece, MailpieceTransition
from mailpieces.services import mailpiece_transition


class MailpieceTransitionInline(ReadOnlyHistoryInline):
    model = MailpieceTransition


@admin.register(Mailpiece)
class MailpieceAdmin(HistoryFSMAdminMixin, BigTableAdminMixin):
    fsm_service = mailpiece_transition
    fsm_service_object_kwarg = "mailpiece"

    list_display = ("__str__", "recipient", "printer", "status", "last_vendor_status", "status_at", "updated")
    list_filter = ("status", "printer")
    search_fields = ("printer_id", "reference", "recipient__first_name", "recipient__last_name", "recipient__email")
    list_select_related = ("recipient",)
    raw_id_fields = ("recipient",)
    readonly_fields = ("status", "status_at", "last_vendor_status", "printer_id", "reference", "created", "updated")
    inlines = (MailpieceTransitionInline,)


@admin.register(MailpieceTransition)
class MailpieceTransitionAdmin(ReadOnlyHistoryAdmin):
    list_display = ("created", "mailpiece", *ReadOnlyHistoryAdmin.list_display[1:])
    list_select_related = ["mailpiece", "acting_user"]
    search_fields = ("=mailpiece__id", "mailpiece__printer_id", "reason")
    raw_id_fields = ("mailpiece",)
