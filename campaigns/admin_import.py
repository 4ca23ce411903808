"""Admin pieces for importing recipients into a campaign.

``CampaignImportAdminMixin`` goes first in CampaignAdmin's bases.  It adds:
- an "Import recipients" page (``<id>/import/``): upload a CSV (comma or
  semicolon separated; Shopify, HubSpot and Salesforce exports are recognised),
  a default country, whether to update recipients already imported, then
  Import, Dry run, or Dry run as CSV;
- the dry-run page (``<id>/import/dry-run/``): which column went to which
  field and which were not used, warnings (US rows without a state), per-row
  outcome in plain words and totals, nothing written; a column picker per
  field (from the file's own headers) and "Import this file", which imports
  the file already uploaded;
- a read-only "Last import" field with the saved import report.

The uploaded file is kept after the first post (``upload_keep``): under a
random name in a private folder of the default storage, named to the browser
only by a signed token tied to the campaign and the user, deleted after the
import and in any case after ``UPLOAD_MAX_AGE``.  The import runs in the
request through ``campaigns.audience.campaign_import_file``, address lookups
included (fine for the usual file; very large files, or many rows without an
address, are better loaded with ``manage.py import_recipients``, which shows
progress).
"""

from __future__ import annotations

import contextlib
import io
import secrets
from collections import Counter
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import PurePath
from typing import IO, Any, cast

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core import signing
from django.core.exceptions import PermissionDenied
from django.core.files.storage import default_storage
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html

from campaigns.audience import campaign_import_file, report_headline
from campaigns.dry_run import (
    ALREADY,
    IN_FLIGHT,
    OUTCOMES,
    UPDATED,
    DryRunLine,
    DryRunResult,
    dry_run_write_csv,
    recipients_dry_run_csv,
)
from campaigns.importing import (
    FIELD_LABELS,
    REJECTED_SINCE,
    CsvReading,
    ImportFileError,
    csv_headers,
    mapping_parse,
)
from campaigns.models import Campaign, CampaignRecipient
from common.fsm import Actor
from common.permissions import can_import

Status = CampaignRecipient.Status
DRY_RUN_SHOWN = 1000  # rows listed on the page; the CSV has them all
REPORT_LINES_SHOWN = 60


UPLOAD_DIR = "private/recipient-imports"
UPLOAD_MAX_AGE = timedelta(hours=24)
_UPLOAD_SALT = "campaigns.admin_import.upload"


def import_message(report: dict[str, Any]) -> str:
    """The admin's message after an import: the headline, then the counts and
    where the rows are now, in the admin's words (the saved report and the
    command keep the spec's names)."""
    from campaigns.admin import SKIP_WORDS, count_words, status_words

    def n(key: str) -> int:
        return int(report.get(key, 0) or 0)

    # The report counts every row whose recipient is past the checks as "in
    # flight": a control-group or delivered one too, so the words say the rule.
    updatable = ", ".join(status_words(s).lower() for s in (Status.PENDING, Status.SKIPPED))
    not_updated = (
        f"not updated (an import updates only recipients {updatable} or {status_words(Status.BLACKLISTED).lower()})"
    )
    text = f"{report_headline(report)}. {count_words(n('rows_read'), 'row')} read: {n('created')} new"
    for key, words in (
        ("updated", "updated"),
        ("already_present", "already in the campaign"),
        ("duplicates_in_file", "repeated in the file"),
        ("in_flight", not_updated),
        ("unparseable_count", "could not be read"),
    ):
        if n(key):
            text += f", {n(key)} {words}"
    now, reasons = rows_now(report)
    parts = [f"{v} {status_words(k).lower()}" for k, v in now.most_common() if v > 0]
    if parts:
        text += ". Now: " + ", ".join(parts)
    if reasons:
        text += " (skipped: " + ", ".join(f"{v} {SKIP_WORDS.get(k, k).lower()}" for k, v in reasons.items()) + ")"
    return text + "."


def import_panel_lines(report: dict[str, Any]) -> list[str]:
    """The campaign page's "Last import": the message the import showed, in
    the admin's words, then what went wrong line by line (the command prints
    ``report_lines``, in the spec's names)."""
    lines = [import_message(report)]
    rejected = report.get(REJECTED_SINCE)
    if isinstance(rejected, dict):
        why = "; ".join(str(e) for e in rejected.get("errors") or []) or "it could not be read"
        lines.append(
            f"Since then, {rejected.get('source') or 'a file'} was rejected ({why}); nothing of it was imported."
        )
    stopped = (report.get("enrichment") or {}).get("stopped", "")
    if stopped:
        lines.append(f"Address lookups stopped: {stopped}")
    problems = report.get("unparseable", [])
    lines += [f"Line {p['line']}: {p['message']}" for p in problems]
    more = int(report.get("unparseable_count", 0) or 0) - len(problems)
    if more > 0:
        lines.append(f"... and {more} more lines that could not be read")
    lines += [f"Error: {e}" for e in report.get("errors", [])]
    return lines


# The dry run's rows already in the campaign that an update leaves alone
# without being on their way ("in flight" is only for a card being proofed or
# mailed: a control-group, delivered, skipped or archived row is not).
NOT_UPDATED = "Not updated: already in the campaign"
ON_ITS_WAY = frozenset(
    {
        Status.PROOFING_STAGED,
        Status.PROOFING,
        Status.PROOFED,
        Status.SENDING_STAGED,
        Status.SENDING,
        Status.SCHEDULED,
        Status.SENT,
    }
)


def dry_run_line_words(entry: DryRunLine) -> DryRunLine:
    """A dry-run row with the status it is in now in the admin's words
    ("already in the campaign as Delivered; left as is", not "already in
    flight (in the campaign as Received)")."""
    from campaigns.admin import status_words

    if not entry.was:
        if entry.status and not entry.then:  # a new row whose sentence is only the status's name
            return replace(entry, message=status_words(entry.status))
        return entry
    was = status_words(entry.was)
    if entry.outcome == ALREADY:
        return replace(entry, message=f"Already imported: in the campaign as {was}; left as is")
    if entry.outcome == IN_FLIGHT and entry.was in ON_ITS_WAY:
        return replace(entry, message=f"Not updated: already in flight (in the campaign as {was}); left as is")
    if entry.outcome == IN_FLIGHT:
        return replace(entry, outcome=NOT_UPDATED, message=f"Not updated: already in the campaign as {was}; left as is")
    if entry.outcome == UPDATED:
        then = entry.then or status_words(entry.status)
        return replace(entry, message=f"Will be updated (in the campaign as {was}), then: {then}")
    return entry


def dry_run_in_words(result: DryRunResult) -> list[tuple[str, int]]:
    """Put ``result``'s rows in the admin's words (the page and its CSV), and
    return its totals in the page's order."""
    lines = [dry_run_line_words(e) for e in result.lines]
    for before, after in zip(result.lines, lines, strict=True):
        if after.outcome != before.outcome:
            result.totals[before.outcome] -= 1
            result.totals[after.outcome] += 1
    result.lines = lines
    order = list(OUTCOMES)
    order.insert(order.index(IN_FLIGHT) + 1, NOT_UPDATED)
    return [(o, result.totals[o]) for o in order if result.totals[o] > 0]


def size_words(n: int) -> str:
    """A size as people say it: "200 MB", "1.5 KB", "812 bytes"."""
    for unit, size in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= size:
            return f"{round(n / size, 1):g} {unit}"
    return f"{n} byte{'' if n == 1 else 's'}"


def skip_reasons_in_words(reasons: dict[str, int]) -> list[tuple[str, int]]:
    """The dry run's skipped rows by reason, as the admin says them elsewhere
    ("country or address check failed", not "International")."""
    from campaigns.admin import SKIP_WORDS

    return sorted((SKIP_WORDS.get(reason, reason), count) for reason, count in reasons.items())


def rows_now(report: dict[str, Any]) -> tuple[Counter[str], Counter[str]]:
    """Where the imported rows are after the stages, by status, and the
    skipped ones by reason: as imported, then qualification's moves out of
    Pending (both passes, summed), then enrichment's moves out of
    AddressEnrichable (back to Pending, or skipped).  A move to
    ``Skipped:<reason>`` counts as Skipped with its reason."""
    skipped = str(Status.SKIPPED)
    now: Counter[str] = Counter({k: int(v) for k, v in (report.get("by_status") or {}).items()})
    reasons: Counter[str] = Counter({k: int(v) for k, v in (report.get("by_skip_reason") or {}).items()})

    def arrive(moves: dict[str, int]) -> None:
        for target, count in moves.items():
            if target.startswith(f"{skipped}:"):
                now[skipped] += count
                reasons[target.partition(":")[2]] += count
            else:
                now[target] += count

    qualified = {k: int(v) for k, v in (report.get("qualification") or {}).items()}
    now[str(Status.PENDING)] -= sum(qualified.values())
    arrive(qualified)
    enriched = {
        k: int(v)
        for k, v in (report.get("enrichment") or {}).items()
        if k == Status.PENDING or k.startswith(f"{skipped}:")
    }
    now[str(Status.ADDRESS_ENRICHABLE)] -= sum(enriched.values())
    arrive(enriched)
    return now, reasons


class UploadGone(Exception):
    """The kept file cannot be used any more (expired, deleted, someone else's)."""


@dataclass(frozen=True)
class KeptUpload:
    token: str  # what the form posts back: signed, names the file, the campaign and the user
    name: str  # storage name
    source: str  # the file's name on the user's computer, for the report

    def open(self) -> IO[bytes]:
        return cast(IO[bytes], default_storage.open(self.name, "rb"))


def _uploads_purge() -> None:
    """Delete kept files older than UPLOAD_MAX_AGE (an abandoned dry run)."""
    cutoff = timezone.now() - UPLOAD_MAX_AGE
    try:
        _, files = default_storage.listdir(UPLOAD_DIR)
        for name in files:
            path = f"{UPLOAD_DIR}/{name}"
            if default_storage.get_modified_time(path) < cutoff:
                default_storage.delete(path)
    except (OSError, NotImplementedError):
        pass  # nothing kept yet, or a storage that cannot list: the token expires anyway


def upload_keep(upload: Any, campaign: Campaign, user: Any) -> KeptUpload:
    """Keep an uploaded file for a later "Import this file"."""
    _uploads_purge()
    name = default_storage.save(f"{UPLOAD_DIR}/{secrets.token_hex(16)}.csv", upload)
    source = PurePath(str(upload.name or "upload.csv")).name[:200]
    token = signing.dumps({"n": name, "c": campaign.pk, "u": user.pk, "s": source}, salt=_UPLOAD_SALT)
    return KeptUpload(token, name, source)


def upload_find(token: str, campaign: Campaign, user: Any) -> KeptUpload:
    """The kept file a token names, for this campaign and this user only."""
    try:
        data = signing.loads(token, salt=_UPLOAD_SALT, max_age=UPLOAD_MAX_AGE)
    except signing.SignatureExpired as exc:
        raise UploadGone("The uploaded file has expired (files are kept for 24 hours); upload it again.") from exc
    except signing.BadSignature as exc:
        raise UploadGone("The uploaded file could not be found; upload it again.") from exc
    if data.get("c") != campaign.pk or data.get("u") != user.pk:
        raise UploadGone("The uploaded file belongs to another import; upload it again.")
    kept = KeptUpload(token, str(data["n"]), str(data["s"]))
    if not kept.name.startswith(f"{UPLOAD_DIR}/") or not default_storage.exists(kept.name):
        raise UploadGone("The uploaded file was already imported or has expired; upload it again.")
    return kept


def upload_discard(kept: KeptUpload) -> None:
    with contextlib.suppress(OSError):  # purged after UPLOAD_MAX_AGE anyway
        default_storage.delete(kept.name)


AUTOMATIC = ""


class RecipientImportForm(forms.Form):
    file = forms.FileField(
        required=False, help_text="CSV (comma or semicolon separated), UTF-8, first line = column names."
    )
    upload = forms.CharField(required=False, widget=forms.HiddenInput)  # the kept file's token
    # Columns as "field=Column" text (older links and scripts); the page offers pickers.
    mapping = forms.CharField(required=False, widget=forms.HiddenInput)
    default_country = forms.CharField(required=False, max_length=60, help_text="For rows without a country, e.g. US.")
    qualify = forms.BooleanField(
        required=False,
        initial=True,
        help_text=(
            "Qualify right after the import (blocklist, cap, holdout...), and look up missing addresses "
            "when the campaign enriches them."
        ),
    )
    update = forms.BooleanField(
        required=False,
        label="Update recipients already imported",
        help_text=(
            "When a row is a person already in the campaign, replace their details with the file's and check "
            "them again; only for people not yet being printed or mailed."
        ),
    )

    def __init__(
        self,
        *args: Any,
        headers: list[str] | None = None,
        kept: KeptUpload | None = None,
        gone: str = "",
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.headers = headers or []
        self.kept = kept
        self.gone = gone  # why the posted token's file cannot be used
        if self.headers:
            choices = [(AUTOMATIC, "(recognised automatically)")] + [(h, h) for h in dict.fromkeys(self.headers)]
            for name, label in FIELD_LABELS.items():
                self.fields[f"column_{name}"] = forms.ChoiceField(
                    required=False, choices=choices, label=f"Column for {label.lower()}"
                )

    def column_fields(self) -> list[Any]:
        return [self[name] for name in self.fields if name.startswith("column_")]

    def other_fields(self) -> list[Any]:
        return [
            self[name] for name in self.fields if not name.startswith("column_") and name not in ("upload", "mapping")
        ]

    def clean_file(self) -> Any:
        upload = self.cleaned_data["file"]
        limit = getattr(settings, "CSV_UPLOAD_MAX_BYTES", 200 * 1024 * 1024)
        if upload and upload.size > limit:
            raise forms.ValidationError(
                f"The file is {size_words(upload.size)} ({upload.size:,} bytes); the limit is {size_words(limit)}."
            )
        return upload

    def clean_mapping(self) -> dict[str, str]:
        try:
            return mapping_parse(self.cleaned_data.get("mapping") or "")
        except ImportFileError as exc:
            raise forms.ValidationError(str(exc)) from exc

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.kept is None and not data.get("file") and "file" not in self.errors:
            self.add_error("file", self.gone or "Choose a CSV file to upload.")
        mapping = dict(data.get("mapping") or {})
        for name in FIELD_LABELS:
            column = data.get(f"column_{name}")
            if column:
                mapping[name] = column
        data["mapping"] = mapping
        return data

    def reading(self) -> CsvReading:
        """How to read the uploaded file (call once the form is valid)."""
        assert self.kept is not None
        return {
            "source": self.kept.source,
            "mapping": self.cleaned_data["mapping"],
            "default_country": self.cleaned_data["default_country"],
        }


class CampaignImportAdminMixin:
    """Mixin for ``admin.ModelAdmin`` of Campaign (put it first in the bases)."""

    def get_urls(self) -> list[URLPattern]:
        model_admin: Any = self
        wrap = model_admin.admin_site.admin_view
        ours = [
            path("<path:object_id>/import/", wrap(self.import_view), name="campaigns_campaign_import"),
            path(
                "<path:object_id>/import/dry-run/",
                wrap(self.import_dry_run_view),
                name="campaigns_campaign_import_dry_run",
            ),
        ]
        return ours + super().get_urls()  # type: ignore[misc]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        fields = tuple(super().get_readonly_fields(request, obj))  # type: ignore[misc]
        return fields if "last_import_report" in fields else (*fields, "last_import_report")

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        fieldsets = list(super().get_fieldsets(request, obj))  # type: ignore[misc]
        named = {f for _, opts in fieldsets for f in opts.get("fields", ())}
        if obj is not None and "last_import_report" not in named:
            fieldsets.append(("Last import", {"fields": ("last_import_report",)}))
        return fieldsets

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        extra = {**(extra_context or {}), "recipient_import_enabled": can_import(request.user)}
        return super().change_view(request, object_id, form_url, extra)  # type: ignore[misc]

    @admin.display(description="Last import")
    def last_import_report(self, obj: Campaign) -> str:
        if not obj.import_report:
            return "No import yet."
        lines = import_panel_lines(obj.import_report)
        if len(lines) > REPORT_LINES_SHOWN:
            lines = [*lines[:REPORT_LINES_SHOWN], f"... {len(lines) - REPORT_LINES_SHOWN} more lines"]
        return format_html('<pre style="white-space: pre-wrap">{}</pre>', "\n".join(lines))

    # --- views --------------------------------------------------------------------------

    def _campaign(self, request: HttpRequest, object_id: str) -> Campaign:
        model_admin: Any = self
        # The admin's own lookup: an id that is not a number ("abc", "1e3") is a
        # 404 like any missing campaign, not a ValueError (500).
        campaign = model_admin.get_object(request, unquote(object_id))
        if campaign is None:
            raise Http404(f"No campaign with id {object_id!r}.")
        if not (can_import(request.user) and model_admin.has_view_or_change_permission(request, campaign)):
            raise PermissionDenied
        return cast(Campaign, campaign)

    def _context(self, request: HttpRequest, campaign: Campaign, **extra: Any) -> dict[str, Any]:
        model_admin: Any = self
        return {
            **model_admin.admin_site.each_context(request),
            "opts": Campaign._meta,
            "original": campaign,
            "title": f"Import recipients into {campaign}",
            "change_url": reverse("admin:campaigns_campaign_change", args=[campaign.pk]),
            "import_url": reverse("admin:campaigns_campaign_import", args=[campaign.pk]),
            "dry_run_url": reverse("admin:campaigns_campaign_import_dry_run", args=[campaign.pk]),
            "upload_limit": size_words(getattr(settings, "CSV_UPLOAD_MAX_BYTES", 200 * 1024 * 1024)),
            **extra,
        }

    def _form(self, request: HttpRequest, campaign: Campaign) -> RecipientImportForm:
        """The posted form, its file kept (a new upload) or found again (the
        token of an earlier one), with a column picker per field once the
        file's headers are known."""
        data = request.POST.copy()
        kept: KeptUpload | None = None
        gone = ""
        upload = request.FILES.get("file")
        limit = getattr(settings, "CSV_UPLOAD_MAX_BYTES", 200 * 1024 * 1024)
        token = request.POST.get("upload", "")
        if upload is not None and 0 < (upload.size or 0) <= limit:
            # An empty upload is refused by the form ("The submitted file is
            # empty"): it is not kept, so never offered as "already uploaded".
            kept = upload_keep(upload, campaign, request.user)
        elif upload is None and token:
            try:
                kept = upload_find(token, campaign, request.user)
            except UploadGone as exc:
                gone = str(exc)
        headers: list[str] = []
        if kept is not None:
            data["upload"] = kept.token
            with kept.open() as stream:
                headers = csv_headers(stream)
        else:
            data["upload"] = ""
        return RecipientImportForm(data, request.FILES, headers=headers, kept=kept, gone=gone)

    def _form_page(self, request: HttpRequest, campaign: Campaign, form: RecipientImportForm) -> HttpResponse:
        return TemplateResponse(
            request, "admin/campaigns/campaign/import_form.html", self._context(request, campaign, form=form)
        )

    def import_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        campaign = self._campaign(request, object_id)
        if request.method != "POST":
            return self._form_page(request, campaign, RecipientImportForm())
        form = self._form(request, campaign)
        if form.is_valid():
            assert form.kept is not None
            try:
                with form.kept.open() as stream:
                    report = campaign_import_file(
                        campaign=campaign,
                        file=stream,
                        actor=Actor("admin", request.user),
                        qualify=form.cleaned_data["qualify"],
                        update=form.cleaned_data["update"],
                        **form.reading(),
                    )
            except ImportFileError as exc:
                form.add_error(None, f"{_sentence(exc.plain)} Nothing was imported.{_unusable(form)}")
            else:
                upload_discard(form.kept)
                model_admin: Any = self
                saved = report.as_dict()
                nothing = not (report.created or report.updated)
                level = messages.WARNING if report.unparseable_count or nothing else messages.SUCCESS
                model_admin.message_user(request, import_message(saved), level)
                return HttpResponseRedirect(reverse("admin:campaigns_campaign_change", args=[campaign.pk]))
        return self._form_page(request, campaign, form)

    def import_dry_run_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        campaign = self._campaign(request, object_id)
        if request.method != "POST":
            return HttpResponseRedirect(reverse("admin:campaigns_campaign_import", args=[campaign.pk]))
        form = self._form(request, campaign)
        if form.is_valid():
            kept = form.kept
            assert kept is not None
            try:
                with kept.open() as stream:
                    result = recipients_dry_run_csv(
                        campaign=campaign,
                        stream=stream,
                        actor=Actor("admin", request.user),
                        update=form.cleaned_data["update"],
                        **form.reading(),
                    )
            except ImportFileError as exc:
                form.add_error(None, f"{_sentence(exc.plain)}{_unusable(form)}")
            else:
                totals = dry_run_in_words(result)
                if "as_csv" in request.POST:
                    out = io.StringIO()
                    dry_run_write_csv(result, out)
                    response = HttpResponse(out.getvalue(), content_type="text/csv; charset=utf-8")
                    response["Content-Disposition"] = f'attachment; filename="dry-run-campaign-{campaign.pk}.csv"'
                    return response
                chosen = result.columns.chosen() if result.columns else {}
                again = RecipientImportForm(
                    initial={
                        "upload": kept.token,
                        "default_country": form.cleaned_data["default_country"],
                        "qualify": form.cleaned_data["qualify"],
                        "update": form.cleaned_data["update"],
                        **{f"column_{name}": column for name, column in chosen.items()},
                    },
                    headers=form.headers,
                    kept=kept,
                )
                context = self._context(
                    request,
                    campaign,
                    form=again,
                    result=result,
                    totals=totals,
                    skip_reasons=skip_reasons_in_words(result.skip_reasons),
                    lines=result.lines[:DRY_RUN_SHOWN],
                    more=max(0, len(result.lines) - DRY_RUN_SHOWN),
                    source=kept.source,
                    columns_used=result.columns.used() if result.columns else [],
                    columns_ignored=result.columns.ignored() if result.columns else [],
                    separator={",": "commas", ";": "semicolons", "\t": "tabs", "|": "vertical bars"}.get(
                        result.delimiter, result.delimiter
                    ),
                )
                context["title"] = f"Dry run of {kept.source} for {campaign}"
                return TemplateResponse(request, "admin/campaigns/campaign/import_dry_run.html", context)
        return self._form_page(request, campaign, form)


def _unusable(form: RecipientImportForm) -> str:
    """A kept file with no column names to read (a picture renamed .csv, an
    empty file) is not offered again as "already uploaded": it is deleted,
    and the page asks for another file.  A file whose columns are known
    stays, to pick its columns or give a default country."""
    if form.kept is None or form.headers:
        return ""
    upload_discard(form.kept)
    form.kept = None
    data = cast(QueryDict, form.data).copy()
    data["upload"] = ""  # the page posts no token of a file that is gone
    form.data = data
    return " Choose another file."


def _sentence(text: str) -> str:
    """``text`` as a sentence: capital first letter, full stop."""
    text = text.strip()
    return (text[:1].upper() + text[1:]).rstrip(".") + "." if text else text
