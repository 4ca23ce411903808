from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.actions import delete_selected as django_delete_selected
from django.contrib.admin.utils import unquote
from django.contrib.admin.views.main import ChangeList
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models
from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django_fsm import ConcurrentTransition
from django_q.tasks import async_task

from campaigns.admin_import import CampaignImportAdminMixin
from campaigns.admin_proofs import CampaignProofAdminMixin, RecipientProofAdminMixin
from campaigns.billing.service import organizations_billing_check
from campaigns.importing import FIELD_LABELS, field_words
from campaigns.keys import blocklist_address_key, blocklist_email_key, blocklist_entry_key
from campaigns.mailing.retry import recipients_retry_sending
from campaigns.models import (
    MERGE_FIELDS,
    SCHEDULED_UNTOUCHED,
    BlocklistEntry,
    Campaign,
    CampaignRecipient,
    ErrorMessages,
    Organization,
    ProofApproval,
    ProofTemplate,
    RecipientTransition,
    may_be_at_printer,
    scheduled_untouched,
)
from campaigns.pipeline.doorbell import campaign_ring_on_commit
from campaigns.proofing.design import campaign_withdraw_stale_approvals, template_withdraw_stale_approvals
from campaigns.proofing.local import background_too_big
from campaigns.proofing.retry import RetryReport, recipient_data_changed, recipients_retry_proofing
from campaigns.recipient_json import (
    ALTERED_FIELDS,
    APPROVAL_ERRORS,
    ENRICHMENT,
    EXTRA,
    SKIP_DETAILS,
    SOURCE_ROW,
    VALIDATION_ERRORS,
)
from campaigns.revalidation import REVALIDATED_FROM, recipients_revalidate
from campaigns.search import SEARCH_HELP, HasKey, recipients_search
from campaigns.selectors import campaign_countries
from campaigns.services import recipient_transition, recipients_bulk_transition, recipients_record_created
from campaigns.validation import RECIPIENT_FIELDS, ValidatedRow, recipient_recheck
from common.admin import BigTableAdminMixin, HistoryFSMAdminMixin, ReadOnlyHistoryAdmin
from common.fsm import Actor
from common.models import is_row_id
from common.permissions import ADDRESS_FIELDS, can_cancel, can_edit_address, can_retry, can_revalidate
from mailpieces.models import Mailpiece, MailpieceEvent, MailpieceTransition
from mailpieces.status import MailpieceStatus
from printers.kinds import PrinterKind
from printers.registry import printer_ready

logger = logging.getLogger(__name__)
Status = CampaignRecipient.Status
SkipReason = CampaignRecipient.SkipReason


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


class BackgroundField(forms.ImageField):
    """A picture far larger than a card needs is refused in words
    (``campaigns.proofing.local.background_too_big``) before Django's own
    check calls it corrupted."""

    def to_python(self, data: Any) -> Any:
        if data is not None and hasattr(data, "read"):
            problem = background_too_big(data)
            if problem:
                raise forms.ValidationError(problem)
        return super().to_python(data)


@admin.register(ProofTemplate)
class ProofTemplateAdmin(admin.ModelAdmin):
    formfield_overrides = {models.ImageField: {"form_class": BackgroundField}}
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
            n = template_withdraw_stale_approvals(
                template=obj, reason=f"the template was edited (now its version {obj.version})"
            )
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


# --- the words ops read ---------------------------------------------------------------

# Each status in words, with its colour: the spec's name stays in the tooltip
# and in the filters' links, so nothing ops learnt from the docs is lost.
GREY, BLUE, GREEN, ORANGE, RED, DARK = "#6b7280", "#1d6fb8", "#1f7a3a", "#b45309", "#b91c1c", "#374151"
# A mailpiece's bar in the campaign funnel: green while it goes its way, not when it failed or came back.
PIECE_COLOURS = {
    MailpieceStatus.ERROR: RED,
    MailpieceStatus.RETURNED: ORANGE,
    MailpieceStatus.CANCELLED: GREY,
    MailpieceStatus.TEST: GREY,
    MailpieceStatus.UNKNOWN: GREY,
}
STATUS_WORDS: dict[str, tuple[str, str]] = {
    Status.PENDING: ("Waiting to be checked", GREY),
    Status.ADDRESS_ENRICHABLE: ("Address lookup queued", BLUE),
    Status.ADDRESS_ENRICHING: ("Looking up the address", BLUE),
    Status.PROOFING_STAGED: ("Queued for proofing", BLUE),
    Status.PROOFING: ("Making the proof", BLUE),
    Status.PROOFED: ("Proof made", BLUE),
    Status.SENDING_STAGED: ("Queued for mailing", BLUE),
    Status.SENDING: ("Sending to the printer", BLUE),
    Status.SCHEDULED: ("Scheduled for its mail date", BLUE),
    Status.SENT: ("Mailed", GREEN),
    Status.RECEIVED: ("Delivered", GREEN),
    Status.HOLDOUT: ("Control group (not mailed)", GREY),
    Status.SKIPPED: ("Skipped", ORANGE),
    Status.BLACKLISTED: ("On the blocklist", DARK),
    Status.ERROR: ("Error", RED),
    Status.ARCHIVED: ("Archived (excluded)", GREY),
}
SKIP_WORDS: dict[str, str] = {
    SkipReason.NO_ADDRESS: "No usable address or name",
    SkipReason.INTERNATIONAL: "Country or address check failed",
    SkipReason.CAP_EXCEEDED: "Organization's recipient cap reached",
    SkipReason.ENRICHMENT_FAILED: "Address lookup found nothing",
    SkipReason.PRINTER_APPROVAL_FAILED: "Refused by the printer's address rules",
}
# Counted as mailed in the campaign's progress.
MAILED = (Status.SENT, Status.RECEIVED)


LOOKUP_OUTCOMES = {
    "matched": "found an address",
    "no_match": "found nobody matching",
    "no_address": "found the person but no address",
}
LOOKUP_SERVICES = {"local": "the built-in sample lookup", "faraday": "Faraday"}


def enrichment_words(info: Mapping[str, Any]) -> str:
    """What the address lookup did, in words (``recipient.json["enrichment"]``
    holds codes: backend, outcome, match, detail, error)."""
    service = LOOKUP_SERVICES.get(str(info.get("backend") or ""), str(info.get("backend") or "the lookup service"))
    if info.get("error"):
        return f"{service} could not be asked: {info['error']}"
    outcome = str(info.get("outcome") or "")
    text = f"{service} {LOOKUP_OUTCOMES.get(outcome, outcome.replace('_', ' ') or 'answered')}"
    match = str(info.get("match") or "")
    if match:
        first, _, rest = match.partition("_")  # "email_full_name": on the email and the full name
        text += f", matched on the {first}" + (f" and the {rest.replace('_', ' ')}" if rest else "")
    detail = str(info.get("detail") or "")
    return f"{text} ({detail})" if detail else text


def count_words(n: int, singular: str, plural: str = "") -> str:
    """ "1 error", "2 errors": a count with its noun in the right number."""
    return f"{n} {singular if n == 1 else plural or singular + 's'}"


def status_words(status: str) -> str:
    return STATUS_WORDS.get(status, (status, GREY))[0]


def why_words(recipient: CampaignRecipient) -> str:
    """``recipient.why`` with the skip reason in words ("No usable address or
    name: first_name contains an asterisk", not "NoAddress: …")."""
    text = recipient.why
    reason = recipient.skip_reason
    if recipient.status == Status.SKIPPED and reason and text.startswith(reason):
        text = SKIP_WORDS.get(reason, reason) + field_words(text[len(reason) :])
    return text


def status_badge(status: str) -> str:
    words, colour = STATUS_WORDS.get(status, (status, GREY))
    return format_html(
        '<span class="status-badge" title="Status: {}" style="background:{};color:#fff;padding:1px 7px;'
        'border-radius:9px;white-space:nowrap;font-size:11px">{}</span>',
        status,
        colour,
        words,
    )


# --- big selections go through the queue ---------------------------------------------

# A selection larger than this runs as a background task, not in the request
# (settings.ADMIN_ACTION_QUEUE_THRESHOLD overrides it).
QUEUE_THRESHOLD = 1000


def queue_threshold() -> int:
    return int(getattr(settings, "ADMIN_ACTION_QUEUE_THRESHOLD", QUEUE_THRESHOLD))


def _not_eligible(counts: Counter[str]) -> str:
    # In words, as the list's badges say them ("already Mailed"): the spec's
    # names are in the filters and tooltips.
    return ", ".join(f"{n} already {status_words(status)}" for status, n in counts.most_common())


def _why_words(why: str) -> str:
    """A retry report's reason in words: the services count "already Sent"
    (the spec's name) or a bare "Pending"."""
    if why.startswith("already "):
        return f"already {status_words(why.removeprefix('already '))}"
    if why in STATUS_WORDS:
        return status_words(why).lower()
    return why


def _retry_words(report: RetryReport) -> str:
    """``report.summary()`` with status names in words."""
    return report.summary(words=_why_words)


def _statuses(queryset: QuerySet[CampaignRecipient]) -> Counter[str]:
    rows = queryset.order_by().values("status").annotate(n=Count("id")).values_list("status", "n")
    return Counter(dict(rows))


# The next step for rows one retry leaves because their error is the other
# stage's ("4 not eligible: 4 not a mailing error" said what, not what to do).
_FIX_BILLING_FIRST = (
    f"(for “{ErrorMessages.BILLING_NOT_READY}”, fix the organization's billing first: its page says what is missing)"
)
NOT_A_MAILING_ERROR_NEXT = (
    " Those errors came before mailing (proofing, or the billing check): use “Retry from proofing” or the "
    f"campaign's “Retry all errors” {_FIX_BILLING_FIRST}."
)
NOT_A_PROOFING_ERROR_NEXT = (
    f" Those errors came from mailing: use “Retry sending” or the campaign's “Retry all errors” {_FIX_BILLING_FIRST}."
)


def _run_retry_proofing(queryset: QuerySet[CampaignRecipient], actor: Actor) -> tuple[str, bool]:
    report = recipients_retry_proofing(queryset=queryset, actor=actor)
    text = f"Retry from proofing: {_retry_words(report)}."
    if report.not_eligible.get("not a proofing error"):
        text += NOT_A_PROOFING_ERROR_NEXT
    return text, bool(report.retried)


def _run_retry_sending(queryset: QuerySet[CampaignRecipient], actor: Actor) -> tuple[str, bool]:
    report = recipients_retry_sending(queryset=queryset, actor=actor)
    text = f"Retry sending: {_retry_words(report)}."
    if report.not_eligible.get("not a mailing error"):
        text += NOT_A_MAILING_ERROR_NEXT
    return text, bool(report.retried or report.reproofed)


def _run_retry_errors(queryset: QuerySet[CampaignRecipient], actor: Actor) -> tuple[str, bool]:
    """Both stages' retries: each takes only its own stage's errors."""
    first = recipients_retry_proofing(queryset=queryset.filter(status=Status.ERROR), actor=actor)
    second = recipients_retry_sending(queryset=queryset.filter(status=Status.ERROR), actor=actor)
    retried = first.retried + second.retried
    text = f"Retry all errors: {retried} retried ({first.retried} to proofing, {second.retried} to mailing)"
    left = second.not_eligible.get("not a mailing error", 0)
    if left:
        text += f"; {left} not eligible: not a proofing or mailing error"
    return text + ".", bool(retried)


def _run_revalidate(queryset: QuerySet[CampaignRecipient], actor: Actor) -> tuple[str, bool]:
    before = _statuses(queryset)
    eligible = sum(n for s, n in before.items() if s in REVALIDATED_FROM)
    outcome = recipients_revalidate(queryset=queryset, actor=actor)
    moved = sum(outcome.values())
    # The opening is the backfill command's (revalidate_recipients); where
    # they ended is in words ("2 queued for proofing, 1 skipped").
    order = {s.value: i for i, s in enumerate(Status)}
    ends = (
        ", ".join(f"{n} {status_words(s).lower()}" for s, n in sorted(outcome.items(), key=lambda kv: order[kv[0]]))
        or "nothing moved"
    )
    text = f"Re-validated {moved} recipient(s): {ends}."
    left = Counter({s: n for s, n in before.items() if s not in REVALIDATED_FROM})
    if eligible > moved:
        left["changed meanwhile"] = eligible - moved
    if left:
        parts = ", ".join(
            f"{n} changed meanwhile" if s == "changed meanwhile" else f"{n} already {status_words(s)}"
            for s, n in left.most_common()
        )
        text += f" {sum(left.values())} not eligible (only Skipped and Blacklisted rows are): {parts}."
    return text, bool(moved)


ARCHIVABLE = tuple(CampaignRecipient.archive._django_fsm.transitions)


def _run_archive(queryset: QuerySet[CampaignRecipient], actor: Actor) -> tuple[str, bool]:
    before = _statuses(queryset)
    # A Scheduled card a worker holds, or one already attempted, may be at
    # the printer: it is not archived (the transition's guard).
    at_printer = queryset.filter(status=Status.SCHEDULED).exclude(SCHEDULED_UNTOUCHED).count()
    moved = recipients_bulk_transition(
        queryset=queryset, method="archive", actor=actor, reason="Archive (exclude from campaign)"
    )
    text = f"Archive: {len(moved)} archived"
    left = Counter({s: n for s, n in before.items() if s not in ARCHIVABLE})
    eligible = sum(before.values()) - sum(left.values()) - at_printer
    changed = max(0, eligible - len(moved))
    parts = [
        _not_eligible(left),
        f"{at_printer} scheduled but already being sent to the printer" if at_printer else "",
        f"{changed} changed meanwhile" if changed else "",
    ]
    if any(parts):
        text += f"; {sum(left.values()) + at_printer + changed} not eligible: {', '.join(p for p in parts if p)}"
    return text + ".", bool(moved)


# name -> (what the queued message calls it, the runner)
RECIPIENT_ACTIONS: dict[str, tuple[str, Callable[[QuerySet[CampaignRecipient], Actor], tuple[str, bool]]]] = {
    "retry_proofing": ("retried from proofing", _run_retry_proofing),
    "retry_sending": ("retried (sending)", _run_retry_sending),
    "retry_errors": ("retried", _run_retry_errors),
    "revalidate": ("re-validated", _run_revalidate),
    "archive": ("archived", _run_archive),
}


def recipient_action_task(name: str, ids: list[int], user_id: int | None) -> str:
    """The queued form of an admin action (django-q2 runs it): the same
    service on the same rows, in the acting user's name."""
    user = get_user_model().objects.filter(pk=user_id).first() if user_id else None
    text, _ = RECIPIENT_ACTIONS[name][1](CampaignRecipient.objects.filter(pk__in=ids), Actor("admin", user))
    logger.info("queued admin action %s by user %s: %s", name, user_id, text)
    return text


def recipient_action_enqueue(name: str, ids: list[int], user_id: int | None) -> None:
    async_task("campaigns.admin.recipient_action_task", name, ids, user_id, task_name=f"admin {name}")


def recipient_action(
    modeladmin: admin.ModelAdmin[Any], request: HttpRequest, name: str, queryset: QuerySet[CampaignRecipient]
) -> None:
    """Run ``name`` on ``queryset`` and say what it did; a selection bigger than
    the threshold goes to the queue instead."""
    count = queryset.count()
    if count > queue_threshold():
        ids = list(queryset.order_by("pk").values_list("pk", flat=True))
        recipient_action_enqueue(name, ids, request.user.pk)
        modeladmin.message_user(
            request,
            f"Queued: {count} recipients will be {RECIPIENT_ACTIONS[name][0]} in the background; "
            "the result appears in the history (and under Task queue > Successful tasks).",
            level=messages.INFO,
        )
        return
    text, moved = RECIPIENT_ACTIONS[name][1](queryset, Actor("admin", request.user))
    modeladmin.message_user(request, text, level=messages.SUCCESS if moved else messages.WARNING)


# --- recipient changelist filters ----------------------------------------------------


class StatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status__exact"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(s.value, f"{status_words(s.value)} ({s.value})") for s in Status]

    def queryset(self, request: HttpRequest, queryset: QuerySet[CampaignRecipient]) -> QuerySet[CampaignRecipient]:
        return queryset.filter(status=self.value()) if self.value() else queryset


class SkipReasonFilter(admin.SimpleListFilter):
    title = "skip reason"
    parameter_name = "skip_reason__exact"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(r.value, f"{SKIP_WORDS[r.value]} ({r.value})") for r in SkipReason]

    def queryset(self, request: HttpRequest, queryset: QuerySet[CampaignRecipient]) -> QuerySet[CampaignRecipient]:
        # The "not blank" term names the partial index (recipient_skip_reason) to SQLite.
        return queryset.filter(~Q(skip_reason=""), skip_reason=self.value()) if self.value() else queryset


class ErrorMessageFilter(admin.SimpleListFilter):
    title = "error message"
    parameter_name = "error_message__exact"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(m, m) for m in sorted(ErrorMessages.all().values())]

    def queryset(self, request: HttpRequest, queryset: QuerySet[CampaignRecipient]) -> QuerySet[CampaignRecipient]:
        # The "not blank" term names the partial index (recipient_error_message) to SQLite.
        return queryset.filter(~Q(error_message=""), error_message=self.value()) if self.value() else queryset


class ApprovalErrorsFilter(admin.SimpleListFilter):
    title = "printer approval errors"
    parameter_name = "approval_errors"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Has approval errors"), ("no", "No approval errors")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[CampaignRecipient]) -> QuerySet[CampaignRecipient]:
        # The partial index recipient_approval_errors's own condition.
        has = HasKey(F("json"), APPROVAL_ERRORS)
        if self.value() == "yes":
            return queryset.filter(has)
        if self.value() == "no":
            return queryset.exclude(has)
        return queryset


class PrinterFilter(admin.SimpleListFilter):
    title = "printer"
    parameter_name = "campaign__printer__exact"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(str(k), str(label)) for k, label in PrinterKind.choices]

    def queryset(self, request: HttpRequest, queryset: QuerySet[CampaignRecipient]) -> QuerySet[CampaignRecipient]:
        if not self.value():
            return queryset
        # The campaigns' ids, not a join: each is a recipient_campaign_id range.
        ids = list(Campaign.objects.filter(printer=self.value()).values_list("pk", flat=True))
        return queryset.filter(campaign_id__in=ids)


class MailpieceStatusFilter(admin.SimpleListFilter):
    title = "mailpiece status"
    parameter_name = "mailpieces__status__exact"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(str(k), str(label)) for k, label in MailpieceStatus.choices]

    def queryset(self, request: HttpRequest, queryset: QuerySet[CampaignRecipient]) -> QuerySet[CampaignRecipient]:
        if not self.value():
            return queryset
        # A subquery on the mailpiece's status index, not a join: a join
        # makes the changelist wrap the whole list in EXISTS (duplicates).
        return queryset.filter(pk__in=Mailpiece.objects.filter(status=self.value()).values("recipient_id"))


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


# --- the recipient page ----------------------------------------------------------------


# The statuses whose rows go through qualification (and so the address lookup)
# before anything is printed: added by hand, re-validated, or waiting for it.
BEFORE_QUALIFICATION = frozenset({Status.PENDING, Status.SKIPPED, Status.BLACKLISTED, Status.ADDRESS_ENRICHABLE})


class RecipientForm(forms.ModelForm):
    """A recipient added or edited by hand passes the import's validation
    (``campaigns.validation``: the same rules, the campaign's printer
    countries, address enrichment), or the form is refused with the
    validator's messages.  The stored values are the validator's (stripped,
    country and US state as codes), as an import stores them."""

    validated: ValidatedRow | None = None
    # The fields whose stored value changes (the validator's value against the
    # row as loaded, not what was typed against what was shown: "ma" over
    # "MA" changes nothing, an email edit may repair the ZIP).  Only these are
    # saved, and a card changes when one of ADDRESS_FIELDS is among them.
    stored_changes: frozenset[str] = frozenset()

    class Meta:
        model = CampaignRecipient
        fields = ("campaign", *RECIPIENT_FIELDS)

    @property
    def card_changes(self) -> frozenset[str]:
        return self.stored_changes & frozenset(ADDRESS_FIELDS)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        adding = self.instance.pk is None
        if not adding and not set(self.changed_data) & set(RECIPIENT_FIELDS):
            return cleaned  # nothing the validator reads changed: pressing a button stays possible
        campaign = cleaned.get("campaign") if adding else self.instance.campaign
        if campaign is None or set(self.errors) & set(RECIPIENT_FIELDS):
            # A field the form refused (too long) has no value here: checking
            # the row without it would add "… is empty" to the form's own error.
            return cleaned
        data = {
            name: (cleaned.get(name) if name in self.fields else getattr(self.instance, name)) or ""
            for name in RECIPIENT_FIELDS
        }
        row = recipient_recheck(
            data,
            stored={} if adding else (self.instance.json if isinstance(self.instance.json, dict) else {}),
            countries=campaign_countries(campaign),
            # An address left to the enrichment only where qualification will
            # still send the row there; a row past it (in Error, about to be
            # sent back to the printer) keeps needing a whole address.
            enrichment=campaign.address_enrichment and (adding or self.instance.status in BEFORE_QUALIFICATION),
        )
        if row.skip_reason:
            # The stored messages name the fields ("zip is empty"); the form
            # says them as the import page does ("ZIP / postal code is empty").
            for name, message in [(e["field"], e["message"]) for e in row.errors]:
                self.add_error(name if name in self.fields and name not in self.errors else None, field_words(message))
            return cleaned
        for name in RECIPIENT_FIELDS:
            if name in self.fields:
                cleaned[name] = row.data[name]
        if not adding:
            # ``self.instance`` still holds the row as loaded (the form's
            # values reach it after ``clean``).
            self.stored_changes = frozenset(
                name
                for name in RECIPIENT_FIELDS
                if name in self.fields and cleaned[name] != getattr(self.instance, name)
            )
            busy = card_busy(self.instance) if self.card_changes else ""
            if busy:
                raise forms.ValidationError(busy)
        if adding:
            twin = CampaignRecipient.objects.filter(campaign=campaign, natural_key=row.natural_key).first()
            if twin is not None:
                raise forms.ValidationError(f"This person is already in the campaign: recipient #{twin.pk} ({twin}).")
        self.validated = row
        return cleaned


def card_busy(r: CampaignRecipient) -> str:
    """Why the name and address of ``r`` cannot change now, or "": a worker
    is making its card or its address, or the card is on its way to the
    printer and the printer may be making it from the data it was sent (a
    mailed record may still be corrected by a superuser)."""
    if r.status == Status.PROOFING:
        return "Its proof is being made right now: save the change again in a minute."
    if r.status == Status.ADDRESS_ENRICHING:
        return "Its address is being looked up right now: save the change again in a minute."
    if r.status == Status.ERROR and may_be_at_printer(r):
        return (
            "The printer may already have this card (the outcome of its last attempt is unknown), so its name "
            "and address can no longer change. Retry sending first: it looks the card up at the printer."
        )
    held = r.status == Status.SCHEDULED and not scheduled_untouched(r)  # its day came: a worker has it, or tried
    if held or r.status == Status.SENDING or (r.status == Status.SENDING_STAGED and may_be_at_printer(r)):
        return (
            f"This card is already on its way to the printer ({status_words(r.status)}), "
            "so its name and address can no longer change."
        )
    return ""


def _cut(text: str, width: int) -> str:
    """``text`` in at most ``width`` characters; the whole of it in the tooltip when cut."""
    if len(text) <= width:
        return text
    return format_html('<span title="{}">{}…</span>', text, text[: width - 1].rstrip())


def _listing(items: Any) -> str:
    items = [i for i in items if i]
    if not items:
        return ""
    return format_html(
        "<ul style='margin:0;padding-left:1.2em'>{}</ul>", format_html_join("", "<li>{}</li>", ((i,) for i in items))
    )


def _approval_line(e: Any) -> tuple[str]:
    if not isinstance(e, dict):
        return (str(e),)
    loc = ".".join(str(p) for p in e.get("loc") or ())
    return (f"{loc}: {e.get('msg', '')}" if loc else str(e.get("msg", "")),)


def blocklist_matches(r: CampaignRecipient) -> list[BlocklistEntry]:
    """The organization's entries the recipient matches now (the match is not
    stored when it is blacklisted: it is found again from the keys)."""
    keys = set()
    if r.email:
        keys.add(blocklist_email_key(r.email))
    if r.address1:
        keys.add(blocklist_address_key(address1=r.address1, zip=r.zip, country=r.country))
    if not keys:
        return []
    return [
        e
        for e in BlocklistEntry.objects.filter(organization_id=r.campaign.organization_id)
        if e.key in keys
        or (e.email and blocklist_email_key(e.email) in keys)
        or (e.address1 and blocklist_entry_key(address1=e.address1, zip=e.zip, country=e.country) in keys)
    ]


TIMELINE_ROWS = 60


def recipient_timeline(r: CampaignRecipient) -> list[tuple[Any, str, str, str]]:
    """(when, what, who, detail) of the recipient's moves, its mailpieces'
    moves and the printer's reports, newest first."""
    rows: list[tuple[Any, str, str, str]] = []
    for t in r.transitions.select_related("acting_user").order_by("-created", "-id")[:TIMELINE_ROWS]:
        what = (
            f"{status_words(t.from_status)} → {status_words(t.to_status)}"
            if t.from_status
            else f"Created as {status_words(t.to_status)}"
        )
        rows.append((t.created, what, f"{t.acting_user or t.source}", t.reason))
    pieces = list(r.mailpieces.all())
    if pieces:
        by_id = {p.pk: p for p in pieces}
        moves = MailpieceTransition.objects.filter(mailpiece__in=pieces).select_related("acting_user")
        for m in moves.order_by("-created", "-id")[:TIMELINE_ROWS]:
            piece = by_id[m.mailpiece_id]
            rows.append(
                (
                    m.created,
                    f"Mailpiece {piece.printer_id or piece.pk}: {m.from_status or 'created'} → {m.to_status}",
                    f"{m.acting_user or m.source}",
                    m.reason,
                )
            )
        events = MailpieceEvent.objects.filter(mailpiece__in=pieces).order_by("-created", "-id")[:TIMELINE_ROWS]
        for e in events:
            rows.append(
                (
                    e.occurred_at or e.created,
                    f"Printer reported “{e.vendor_status}” ({e.get_status_display()})",
                    f"printer {e.get_printer_display()}",
                    f"{e.get_outcome_display()}" + (f": {e.note}" if e.note else ""),
                )
            )
    rows.sort(key=lambda row: row[0], reverse=True)
    return rows[:TIMELINE_ROWS]


# Set by the stages, never typed in: shown read-only, folded away under
# "Technical details", each under a label in words (the recipient admin's
# ``_technical`` fields; the model's names are the engineers' own).
PIPELINE_FIELDS = (
    "duplicate_check_key",  # natural_key
    "worker_claim",  # claim_token
    "held_until",  # lease_until
    "attempts",  # attempt
    "submission_number",  # submission_gen
    "printer_idempotency_key",  # idempotency_key
    "proof_front_file",  # proof_url
    "proof_back_file",  # proof_back_url
    "proof_design_version",  # proof_version
    "created",
    "updated",
)


def _technical(field_name: str, label: str) -> Any:
    """A read-only field of "Technical details" under its label in words."""

    @admin.display(description=label)
    def show(self: Any, obj: CampaignRecipient) -> str:
        value = getattr(obj, field_name)
        if value is None or value == "":
            return "-"
        if isinstance(value, dt.datetime):
            return f"{timezone.localtime(value):%Y-%m-%d %H:%M:%S}"
        return str(value)

    return show


def _one(method: str) -> Callable[[CampaignRecipient, Actor], Any]:
    """A button runs the bulk action's service on its one row."""
    return lambda obj, actor: RECIPIENT_ACTIONS[method][1](CampaignRecipient.objects.filter(pk=obj.pk), actor)


@admin.register(CampaignRecipient)
class CampaignRecipientAdmin(RecipientProofAdminMixin, HistoryFSMAdminMixin, BigTableAdminMixin):
    form = RecipientForm
    fsm_service = recipient_transition
    fsm_service_object_kwarg = "recipient"
    # The only buttons (mark_enrichable, stage_proofing and the stages' own
    # moves never are: qualification decides them), each behind its permission,
    # each through the bulk action's service.
    fsm_buttons: Mapping[str, Callable[[Any], bool]] = {
        "retry_proofing": can_retry,
        "retry_sending": can_retry,
        "revalidate": can_revalidate,
        "archive": can_cancel,
    }
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
        # Through the bulk move: its guard is checked in the statement that
        # moves the row, and a per-object save would write back a claim a
        # worker took since the page was loaded.
        "archive": _one("archive"),
    }

    # Fits a 1366-px laptop: long names, reasons and campaigns are cut, whole in the tooltip.
    list_display = ("name_short", "status_badge", "why_short", "zip", "campaign_short", "updated_short")
    list_display_links = ("name_short",)
    list_filter = (
        StatusFilter,
        "campaign",
        SkipReasonFilter,
        ErrorMessageFilter,
        ErrorFilter,
        ApprovalErrorsFilter,
        PrinterFilter,
        MailpieceStatusFilter,
        ("created", admin.DateFieldListFilter),
    )
    # Shows the search box; what a term matches is recipients_search's
    # (campaigns/search.py), each shape on its own index.
    search_fields = ("last_name",)
    search_help_text = SEARCH_HELP
    list_select_related = ("campaign",)
    # A searchable list of campaigns by name (a raw id box asked a new user for a number).
    autocomplete_fields = ("campaign",)
    readonly_fields = (
        "status_badge",
        "why",
        "skip_reason_words",
        "error_message",
        "error_detail",
        "proof",
        "discount_code",
        "mail",
        "data_view",
        "checks_view",
        "blocklist_view",
        "timeline",
        *PIPELINE_FIELDS,
    )
    fieldsets = (
        (
            None,
            {"fields": ("campaign", "status_badge", "why", "skip_reason_words", "error_message", "error_detail")},
        ),
        ("Checks", {"fields": ("checks_view", "blocklist_view")}),
        ("Proof", {"fields": ("proof", "discount_code")}),
        ("Mail", {"fields": ("mail",)}),
        ("Person", {"fields": ("first_name", "last_name", "company", "email", "external_id")}),
        ("Address", {"fields": ("address1", "address2", "city", "state", "zip", "country")}),
        ("Data as imported and as now", {"fields": ("data_view",)}),
        ("Timeline (newest first)", {"fields": ("timeline",)}),
        (
            "Technical details (for engineers)",
            {
                "classes": ("collapse",),
                "fields": PIPELINE_FIELDS,
                "description": "Set by the workers, never typed in: what an engineer needs to trace this card.",
            },
        ),
    )
    add_fieldsets = (
        (None, {"fields": ("campaign",)}),
        ("Person", {"fields": ("first_name", "last_name", "company", "email", "external_id")}),
        ("Address", {"fields": ("address1", "address2", "city", "state", "zip", "country")}),
    )
    actions = ("retry_proofing", "retry_sending", "revalidate", "archive")

    duplicate_check_key = _technical("natural_key", "Duplicate-check key")
    worker_claim = _technical("claim_token", "Worker claim")
    held_until = _technical("lease_until", "Held by a worker until")
    attempts = _technical("attempt", "Attempts so far")
    submission_number = _technical("submission_gen", "Submission number")
    printer_idempotency_key = _technical("idempotency_key", "Printer idempotency key")
    proof_front_file = _technical("proof_url", "Proof image (front)")
    proof_back_file = _technical("proof_back_url", "Proof image (back)")
    proof_design_version = _technical("proof_version", "Proof made from design version")

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest) -> bool:
        # The printer and mailpiece filters keep the field filters' parameter
        # names (links and bookmarks), which Django checks as relation lookups;
        # the bare forms of old links still filter (through Django's join).
        if lookup in (PrinterFilter.parameter_name, MailpieceStatusFilter.parameter_name):
            return True
        if lookup in ("campaign__printer", "mailpieces__status"):
            return True
        return super().lookup_allowed(lookup, value, request)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[CampaignRecipient], search_term: str
    ) -> tuple[QuerySet[CampaignRecipient], bool]:
        # Never a join, so never duplicates (no DISTINCT/EXISTS over the list).
        return recipients_search(queryset, search_term), False

    # --- permissions ---

    def get_help_text(self, transition: Any) -> str:
        # The button's tooltip names the status as the page says it ("Queued
        # for proofing"), not by the spec's name.
        text = transition.custom.get("help_text")
        if text:
            return str(text)
        return f"Moves it to “{status_words(transition.target)}”, recorded in its history with your name."

    def status_label(self, obj: Any) -> str:
        return status_words(obj.status).lower()

    def why_label(self, obj: Any) -> str:
        return why_words(obj)

    def has_retry_permission(self, request: HttpRequest) -> bool:
        return can_retry(request.user)

    def has_revalidate_permission(self, request: HttpRequest) -> bool:
        return can_revalidate(request.user)

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        return can_cancel(request.user)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # archive instead: the history stays

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None:
            fields.append("campaign")  # a recipient never moves to another campaign
        if obj is not None and not can_edit_address(request.user, obj):
            fields += [f for f in ADDRESS_FIELDS if f not in fields]
        return tuple(fields)

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.add_fieldsets if obj is None else super().get_fieldsets(request, obj)

    def get_inlines(self, request: HttpRequest, obj: Any) -> Any:
        return ()  # the history is in the timeline

    # --- saving by hand ---

    def changeform_view(
        self, request: HttpRequest, object_id: str | None = None, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except ConcurrentTransition:
            # A worker moved the row on between the page's read and its save
            # (the save checks the status it read): nothing was saved.
            self.message_user(
                request,
                "A worker moved this recipient on while you were editing it, so nothing was saved. "
                "Here it is as it is now: make your change again if it still applies.",
                level=messages.ERROR,
            )
            return HttpResponseRedirect(request.get_full_path())

    def construct_change_message(self, request: HttpRequest, form: Any, formsets: Any, add: bool = False) -> Any:
        """The history's "Changed …" names what was stored, not what was typed
        ("ma" over "MA" changes nothing; an email edit may repair the ZIP)."""
        if add or not isinstance(form, RecipientForm):
            return super().construct_change_message(request, form, formsets, add)
        order = list(RECIPIENT_FIELDS)
        fields = sorted(form.stored_changes, key=order.index)
        return [{"changed": {"fields": [str(form.fields[f].label or f) for f in fields]}}] if fields else []

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        actor = Actor("admin", request.user)
        if not change:
            row = form.validated
            obj.natural_key = row.natural_key if row is not None else obj.natural_key
            super().save_model(request, obj, form, change)
            recipients_record_created(recipients=[obj], actor=actor, reason="added by hand in the admin")
            campaign_ring_on_commit(obj.campaign_id)
            self.message_user(
                request,
                "Added and checked like an import row: it waits to be qualified (blocklist, printer rules, "
                "holdout) by the next pipeline run.",
                level=messages.INFO,
            )
            return
        # Only what the form changes: a whole-row save would write back, as
        # loaded, the claim, key and saved request a worker wrote meanwhile
        # (the status compare-and-swap alone does not see them).
        if form.stored_changes:
            obj.save(update_fields=[*form.stored_changes, "updated"])
        data_changed = form.stored_changes
        pressing = request.POST.get(self.fsm_post_param)
        if form.card_changes:
            said = recipient_data_changed(recipient=obj, actor=actor)
            if said:
                obj.refresh_from_db()
                self.message_user(request, f"Saved: now {status_words(obj.status)}. {said}", level=messages.INFO)
        if data_changed and obj.status in REVALIDATED_FROM and not pressing and can_revalidate(request.user):
            # The fix of a Skipped/blocklisted row is checked and qualified at
            # once, by the Re-validate action's own service.
            recipients_revalidate(queryset=CampaignRecipient.objects.filter(pk=obj.pk), actor=actor)
            obj.refresh_from_db()
            why = f" {obj.why}." if obj.why else ""
            self.message_user(request, f"Saved and re-validated: now {status_words(obj.status)}.{why}")

    # --- actions ---

    @admin.action(
        description="Retry from proofing (proofing errors; keeps a valid discount code)", permissions=["retry"]
    )
    def retry_proofing(self, request: HttpRequest, queryset: QuerySet[CampaignRecipient]) -> None:
        recipient_action(self, request, "retry_proofing", queryset)

    @admin.action(description="Retry sending (mailing errors; keeps the proof and code)", permissions=["retry"])
    def retry_sending(self, request: HttpRequest, queryset: QuerySet[CampaignRecipient]) -> None:
        recipient_action(self, request, "retry_sending", queryset)

    @admin.action(
        description="Re-validate skipped/blocklisted (check the data again, then qualify)", permissions=["revalidate"]
    )
    def revalidate(self, request: HttpRequest, queryset: QuerySet[CampaignRecipient]) -> None:
        recipient_action(self, request, "revalidate", queryset)

    @admin.action(description="Archive (exclude from campaign)", permissions=["cancel"])
    def archive(self, request: HttpRequest, queryset: QuerySet[CampaignRecipient]) -> None:
        recipient_action(self, request, "archive", queryset)

    # --- what the page shows ---

    @admin.display(description="Status", ordering="status")
    def status_badge(self, obj: CampaignRecipient) -> str:
        return status_badge(obj.status) if obj.pk else "New (checked when saved)"

    @admin.display(description="Why")
    def why(self, obj: CampaignRecipient) -> str:
        return why_words(obj) or "-"

    @admin.display(description="Name")
    def name_short(self, obj: CampaignRecipient) -> str:
        return _cut(str(obj), 28)

    @admin.display(description="Why")
    def why_short(self, obj: CampaignRecipient) -> str:
        return _cut(why_words(obj), 48)

    @admin.display(description="Campaign", ordering="campaign")
    def campaign_short(self, obj: CampaignRecipient) -> str:
        return _cut(obj.campaign.name, 24)

    @admin.display(description="Changed", ordering="updated")
    def updated_short(self, obj: CampaignRecipient) -> str:
        return f"{timezone.localtime(obj.updated):%Y-%m-%d %H:%M}" if obj.updated else "-"

    @admin.display(description="Skip reason")
    def skip_reason_words(self, obj: CampaignRecipient) -> str:
        if not obj.skip_reason:
            return "-"
        return f"{SKIP_WORDS.get(obj.skip_reason, obj.skip_reason)} ({obj.skip_reason})"

    @admin.display(description="Validation and printer checks")
    def checks_view(self, obj: CampaignRecipient) -> str:
        data = obj.json if isinstance(obj.json, dict) else {}
        parts = []
        errors = data.get(VALIDATION_ERRORS) or []
        if errors:
            parts.append(
                format_html(
                    "<strong>The data failed validation:</strong>{}",
                    _listing(field_words(str(e.get("message", ""))) if isinstance(e, dict) else str(e) for e in errors),
                )
            )
        approval = data.get(APPROVAL_ERRORS) or []
        if approval:
            parts.append(
                format_html(
                    "<strong>The printer's address rules refused it:</strong>{}",
                    _listing(_approval_line(e)[0] for e in approval),
                )
            )
        altered = data.get(ALTERED_FIELDS) or []
        if altered:
            parts.append(
                format_html(
                    "<strong>Changed on import to be stored (edit before re-validating):</strong> {}",
                    ", ".join(map(str, altered)),
                )
            )
        details = data.get(SKIP_DETAILS)
        if details:
            parts.append(format_html("<strong>Details given with the skip:</strong> {}", str(details)))
        enrichment = data.get(ENRICHMENT)
        if isinstance(enrichment, dict):
            parts.append(format_html("<strong>Address lookup:</strong> {}", enrichment_words(enrichment)))
        if not parts:
            return "No validation or printer problem recorded."
        return format_html_join("", "<div style='margin-bottom:.5em'>{}</div>", ((p,) for p in parts))

    @admin.display(description="Blocklist")
    def blocklist_view(self, obj: CampaignRecipient) -> str:
        if obj.pk is None:
            return "-"
        matches = blocklist_matches(obj)
        if not matches:
            if obj.status == Status.BLACKLISTED:
                return (
                    "Blocklisted when qualified, but no entry of the organization matches now (the entry was "
                    "removed or edited since): re-validate to qualify it again."
                )
            return "Matches no entry of the organization's blocklist."
        return format_html(
            "Matches {}",
            _listing(
                format_html(
                    '<a href="{}">{}</a>{}',
                    reverse("admin:campaigns_blocklistentry_change", args=[e.pk]),
                    str(e),
                    f" — {e.reason}" if e.reason else "",
                )
                for e in matches
            ),
        )

    @admin.display(description="Data")
    def data_view(self, obj: CampaignRecipient) -> str:
        data = obj.json if isinstance(obj.json, dict) else {}
        source = data.get(SOURCE_ROW) if isinstance(data.get(SOURCE_ROW), dict) else {}
        rows = []
        for name in RECIPIENT_FIELDS:
            now = getattr(obj, name, "")
            received = source.get(name, now) if source else now
            if not now and not received:
                continue
            rows.append((FIELD_LABELS.get(name, name), received, now, "" if str(received) == str(now) else "changed"))
        table = format_html(
            "<table><thead><tr><th>Field</th><th>As imported</th><th>As now</th><th></th></tr></thead>"
            "<tbody>{}</tbody></table>",
            format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", rows),
        )
        note = (
            ""
            if source
            else format_html(
                "<p class='help'>{}</p>",
                "The import keeps what it received only for rows that failed validation: "
                "“as imported” is the stored value.",
            )
        )
        extra = data.get(EXTRA)
        more = (
            format_html(
                "<p><strong>Other columns of the file:</strong></p>{}",
                _listing(f"{k}: {v}" for k, v in extra.items()),
            )
            if isinstance(extra, dict) and extra
            else ""
        )
        return format_html("{}{}{}", table, note, more)

    @admin.display(description="Timeline")
    def timeline(self, obj: CampaignRecipient) -> str:
        if obj.pk is None:
            return "-"
        rows = recipient_timeline(obj)
        if not rows:
            return "Nothing recorded yet."
        return format_html(
            "<table><thead><tr><th>When</th><th>What</th><th>Who</th><th>Why / outcome</th></tr></thead>"
            "<tbody>{}</tbody></table>",
            format_html_join(
                "",
                "<tr><td style='white-space:nowrap'>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                ((f"{when:%Y-%m-%d %H:%M:%S}", what, who, why) for when, what, who, why in rows),
            ),
        )

    @admin.display(description="Mailpieces")
    def mail(self, obj: CampaignRecipient) -> str:
        """Every piece mailed for the recipient, newest first, with the printer's
        latest word: a Returned, Cancelled or Error piece shows here even though
        the recipient stays Sent or Received."""
        if obj.pk is None:
            return "-"
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
    search_fields = ("=recipient__id",)
    search_help_text = "Search by: a recipient's id (its history)."
    raw_id_fields = ("recipient",)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[RecipientTransition], search_term: str
    ) -> tuple[QuerySet[RecipientTransition], bool]:
        # An id, on recipient_transition_by_obj: Django's "=recipient__id" is
        # a LIKE on SQLite, and "reason" read every row of the history.
        term = search_term.strip()
        if not term:
            return queryset, False
        return (queryset.filter(recipient_id=int(term)) if is_row_id(term) else queryset.none()), False


# --- campaigns --------------------------------------------------------------------------


def campaigns_progress(ids: list[int]) -> dict[int, Counter[str]]:
    """Recipients per status of each campaign of ``ids``: one grouped query
    (served by the campaign-and-status index) for a whole changelist page."""
    out: dict[int, Counter[str]] = {pk: Counter() for pk in ids}
    rows = (
        CampaignRecipient.objects.filter(campaign_id__in=ids)
        .order_by()
        .values("campaign_id", "status")
        .annotate(n=Count("id"))
        .values_list("campaign_id", "status", "n")
    )
    for campaign_id, status, n in rows:
        out[campaign_id][status] = n
    return out


def progress_line(counts: Counter[str]) -> str:
    total = sum(counts.values())
    if not total:
        return "no recipients"
    mailed = sum(counts[s] for s in MAILED)
    text = f"{mailed} / {total} mailed"
    if counts[Status.ERROR]:
        text += f" · {count_words(counts[Status.ERROR], 'error')}"
    # As the funnel below it counts them: the blocklisted apart from the skipped.
    if counts[Status.SKIPPED]:
        text += f" · {counts[Status.SKIPPED]} skipped"
    if counts[Status.BLACKLISTED]:
        text += f" · {counts[Status.BLACKLISTED]} on the blocklist"
    return text


class CampaignChangeList(ChangeList):
    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        progress = campaigns_progress([c.pk for c in self.result_list])
        for c in self.result_list:
            c.progress_counts = progress.get(c.pk, Counter())


FunnelRow = tuple[str, str, int, str, str]  # link, name, count, in words, bar colour


def _bar_rows(rows: list[FunnelRow], total: int) -> str:
    """A count per line, each a link, with a CSS bar: no script, nothing fetched."""
    if not rows:
        return format_html("<p>{}</p>", "None.")
    # One layout for every section (fixed column widths), so bars line up and
    # compare between sections; the link says it in words, the spec's name is
    # its tooltip.
    return format_html(
        "<table class='funnel' style='table-layout:fixed;width:600px'>"
        "<col style='width:280px'><col style='width:320px'>{}</table>",
        format_html_join(
            "",
            "<tr><td style='overflow:hidden;text-overflow:ellipsis;white-space:nowrap'>"
            "<a href='{}' title='{}'>{}: {}</a></td>"
            "<td><div style='background:{};height:10px;width:{}%;min-width:2px' "
            "title='{} %'></div></td></tr>",
            (
                (
                    url,
                    name,
                    words or name,
                    n,
                    bar_colour,
                    round(100 * n / total) if total else 0,
                    round(100 * n / total, 1) if total else 0,
                )
                for url, name, n, words, bar_colour in rows
            ),
        ),
    )


def campaign_funnel(campaign: Campaign) -> str:
    changelist = reverse("admin:campaigns_campaignrecipient_changelist")

    def link(**params: Any) -> str:
        return f"{changelist}?{urlencode({'campaign__id__exact': campaign.pk, **params})}"

    by_status = Counter(
        dict(campaign.recipients.order_by().values("status").annotate(n=Count("id")).values_list("status", "n"))
    )
    total = sum(by_status.values())
    if not total:
        return "No recipients yet."
    order = {s.value: i for i, s in enumerate(Status)}
    status_rows: list[FunnelRow] = [
        (link(status__exact=s), s, n, status_words(s), STATUS_WORDS.get(s, ("", GREY))[1])
        for s, n in sorted(by_status.items(), key=lambda kv: order.get(kv[0], 99))
    ]
    skips = (
        campaign.recipients.exclude(skip_reason="")
        .order_by()
        .values("skip_reason")
        .annotate(n=Count("id"))
        .values_list("skip_reason", "n")
    )
    skip_rows: list[FunnelRow] = [
        (link(skip_reason__exact=r), r, n, SKIP_WORDS.get(r, ""), ORANGE) for r, n in sorted(skips, key=lambda x: -x[1])
    ]
    errors = (
        campaign.recipients.filter(status=Status.ERROR)
        .order_by()
        .values("error_message")
        .annotate(n=Count("id"))
        .values_list("error_message", "n")
    )
    error_rows: list[FunnelRow] = [
        (link(status__exact=Status.ERROR, error_message__exact=m), m or "(no message)", n, "", RED)
        for m, n in sorted(errors, key=lambda x: -x[1])
    ]
    pieces = (
        Mailpiece.objects.filter(recipient__campaign=campaign)
        .order_by()
        .values("status")
        .annotate(n=Count("id"))
        .values_list("status", "n")
    )
    piece_rows: list[FunnelRow] = [
        (
            link(mailpieces__status__exact=s),
            str(MailpieceStatus(s).label) if s in MailpieceStatus.values else str(s),
            n,
            "",
            PIECE_COLOURS.get(s, GREEN),
        )
        for s, n in sorted(pieces, key=lambda x: -x[1])
    ]
    sections = [
        ("Recipients by status", _bar_rows(status_rows, total)),
        ("Skipped, by reason", _bar_rows(skip_rows, total)),
        ("Errors, by message", _bar_rows(error_rows, total)),
        ("Mailpieces, by the printer's status", _bar_rows(piece_rows, sum(n for *_, n, _w, _c in piece_rows) or 1)),
    ]
    return format_html(
        "<p><strong>{}</strong> — each count opens those recipients.</p>{}",
        progress_line(by_status),
        format_html_join("", "<h3 style='margin:.8em 0 .3em'>{}</h3>{}", sections),
    )


def _selected(n: int) -> str:
    """ "the selected campaign is", "the 3 selected campaigns are"."""
    return "the selected campaign is" if n == 1 else f"the {n} selected campaigns are"


@admin.register(Campaign)
class CampaignAdmin(CampaignImportAdminMixin, CampaignProofAdminMixin, admin.ModelAdmin):
    list_display = ("name", "organization", "progress", "printer", "size", "mail_date", "paused", "created")
    list_filter = ("paused", "printer", "address_enrichment", "organization")
    search_fields = ("name", "organization__name")
    list_select_related = ("organization",)
    readonly_fields = ("holdout_seed", "status_counts", "proof_approval", "created", "updated")
    actions = ("run_now", "pause", "resume", "delete_selected")
    fieldsets = (
        (None, {"fields": ("organization", "name", "printer", "size", "mail_date", "paused")}),
        ("Progress", {"fields": ("status_counts", "created", "updated")}),
        ("Audience", {"fields": ("holdout_percent", "holdout_seed", "address_enrichment")}),
        (
            "Design and discount",
            {"fields": ("proof_template", "proof_approval", "discount_enabled", "discount_prefix", "discount_value")},
        ),
    )

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return CampaignChangeList

    def formfield_for_choice_field(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        """The printer list says which printers this server is not set up for
        (choosing one is refused, with why): a new user otherwise picks Lob and
        learns it only on saving."""
        if db_field.name == "printer":
            kwargs["choices"] = [
                (kind, label if printer_ready(kind) else f"{label} (not set up on this server)")
                for kind, label in db_field.choices
            ]
        return super().formfield_for_choice_field(db_field, request, **kwargs)

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view(self.retry_errors_view)
        ours = [path("<path:object_id>/retry-errors/", view, name="campaigns_campaign_retry_errors")]
        return ours + super().get_urls()

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        # The last import's report is open, not folded away.
        fieldsets = list(super().get_fieldsets(request, obj))
        return [
            (name, {**opts, "classes": tuple(c for c in opts.get("classes", ()) if c != "collapse")})
            if "last_import_report" in opts.get("fields", ())
            else (name, opts)
            for name, opts in fieldsets
        ]

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> Any:
        context = {**(extra_context or {}), "can_retry_errors": can_retry(request.user)}
        return super().change_view(request, object_id, form_url, extra_context=context)

    def retry_errors_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        campaign = self.get_object(request, unquote(object_id))
        if campaign is None:
            raise Http404(f"No campaign with id {object_id!r}.")
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not can_retry(request.user):
            raise PermissionDenied
        errors = CampaignRecipient.objects.filter(campaign=campaign, status=Status.ERROR)
        if not errors.exists():
            self.message_user(request, "Retry all errors: this campaign has no recipient in Error.", messages.WARNING)
        else:
            recipient_action(self, request, "retry_errors", errors)
        return HttpResponseRedirect(reverse("admin:campaigns_campaign_change", args=[campaign.pk]))

    def changeform_view(
        self, request: HttpRequest, object_id: str | None = None, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except ValidationError as exc:
            # The save checks a printer switch again under the campaign's
            # lock (Campaign.save): a worker started sending cards after the
            # form's own check.  Nothing was saved (the view's transaction).
            if "printer" not in getattr(exc, "error_dict", {}):
                raise
            said = " ".join(exc.messages)
            self.message_user(request, f"The printer was not changed: {said}", level=messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

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

    @admin.display(description="Progress")
    def progress(self, obj: Campaign) -> str:
        counts = getattr(obj, "progress_counts", None)
        if counts is None:  # outside the changelist
            counts = campaigns_progress([obj.pk])[obj.pk]
        return progress_line(counts)

    @admin.display(description="Funnel")
    def status_counts(self, obj: Campaign) -> str:
        if obj.pk is None:
            return "-"
        return campaign_funnel(obj)

    def has_delete_permission(self, request: HttpRequest, obj: Campaign | None = None) -> bool:
        # A campaign with an audience carries its history: archive recipients instead.
        if obj is not None and obj.recipients.exists():
            return False
        return super().has_delete_permission(request, obj)

    # --- actions (the counts say what each did, and why it did nothing) ---

    @admin.action(description="Run now (move the selected campaigns forward)", permissions=["change"])
    def run_now(self, request: HttpRequest, queryset: QuerySet[Campaign]) -> None:
        ids = list(queryset.filter(paused=False).values_list("pk", flat=True))
        for pk in ids:
            campaign_ring_on_commit(pk)
        paused = queryset.count() - len(ids)
        if not ids:
            self.message_user(
                request, f"Nothing to run: {_selected(paused)} paused; resume first.", level=messages.WARNING
            )
            return
        text = f"Asked the workers to run {count_words(len(ids), 'campaign')}."
        if paused:
            them = "it" if paused == 1 else "them"
            text += f" {count_words(paused, 'paused campaign')} left alone: resume {them} first."
        self.message_user(request, text)

    @admin.action(description="Pause (claim nothing until resumed)", permissions=["change"])
    def pause(self, request: HttpRequest, queryset: QuerySet[Campaign]) -> None:
        self._set_paused(request, queryset, paused=True)

    @admin.action(description="Resume", permissions=["change"])
    def resume(self, request: HttpRequest, queryset: QuerySet[Campaign]) -> None:
        self._set_paused(request, queryset, paused=False)

    def _set_paused(self, request: HttpRequest, queryset: QuerySet[Campaign], *, paused: bool) -> None:
        """Pause or resume the selected campaigns that are not so already, and
        say how many were (a resumed campaign is asked to run at once)."""
        ids = list(queryset.filter(paused=not paused).values_list("pk", flat=True))
        Campaign.objects.filter(pk__in=ids).update(paused=paused)
        if not paused:
            for pk in ids:
                campaign_ring_on_commit(pk)
        already = queryset.count() - len(ids)
        verb, was = ("pause", "already paused") if paused else ("resume", "not paused")
        if not ids:
            self.message_user(request, f"Nothing to {verb}: {_selected(already)} {was}.", messages.WARNING)
            return
        text = f"{verb.capitalize()}d {count_words(len(ids), 'campaign')}."
        if paused:
            text += " Work already claimed finishes its batch."
        if already:
            text += f" {already} {'was' if already == 1 else 'were'} {was}."
        self.message_user(request, text)

    @admin.action(description="Delete selected campaigns (only those without recipients)", permissions=["delete"])
    def delete_selected(self, request: HttpRequest, queryset: QuerySet[Campaign]) -> HttpResponse | None:
        """Django's delete, for campaigns without recipients; with one that
        has some, nothing is deleted and the message says why (Django's page
        said only that the account may not delete "campaign recipients")."""
        with_recipients = queryset.filter(Exists(CampaignRecipient.objects.filter(campaign=OuterRef("pk"))))
        n = with_recipients.count()
        if not n:
            return django_delete_selected(self, request, queryset)
        names = ", ".join(f"“{name}”" for name in with_recipients.order_by("name").values_list("name", flat=True)[:5])
        more = f" and {n - 5} more" if n > 5 else ""
        self.message_user(
            request,
            f"Nothing was deleted: {count_words(n, 'selected campaign')} {'has' if n == 1 else 'have'} recipients "
            f"({names}{more}). A campaign with recipients keeps the history of what was proofed and mailed, so it "
            "cannot be deleted: pause it to stop it, or archive its recipients to exclude them.",
            level=messages.ERROR,
        )
        return None
