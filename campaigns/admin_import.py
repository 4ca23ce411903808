"""Admin pieces for importing recipients into a campaign.

``CampaignImportAdminMixin`` goes first in CampaignAdmin's bases.  It adds:
- an "Import recipients" page (``<id>/import/``): upload a CSV, optional column
  mapping and default country, then Import, Dry run, or Dry run as CSV;
- the dry-run page (``<id>/import/dry-run/``): per-row outcome in plain words and
  totals, nothing written;
- a read-only "Last import" field with the saved import report.
The import runs in the request through ``campaigns.audience.campaign_import_file``,
address lookups included (fine for the usual file; very large files, or many
rows without an address, are better loaded with ``manage.py import_recipients``,
which shows progress).
"""

from __future__ import annotations

import io
from typing import Any, cast

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from campaigns.audience import campaign_import_file, report_lines
from campaigns.dry_run import dry_run_write_csv, recipients_dry_run_csv
from campaigns.importing import CsvReading, ImportFileError, mapping_parse
from campaigns.models import Campaign
from common.fsm import Actor

DRY_RUN_SHOWN = 1000  # rows listed on the page; the CSV has them all
REPORT_LINES_SHOWN = 60


class RecipientImportForm(forms.Form):
    file = forms.FileField(help_text="CSV, UTF-8, first line = column names.")
    mapping = forms.CharField(
        required=False,
        help_text="Only when the headers are unusual, e.g. first_name=Given,zip=Postcode.",
        widget=forms.TextInput(attrs={"size": 60}),
    )
    default_country = forms.CharField(required=False, max_length=60, help_text="For rows without a country, e.g. US.")
    qualify = forms.BooleanField(
        required=False,
        initial=True,
        help_text=(
            "Qualify right after the import (blocklist, cap, holdout...), and look up missing addresses "
            "when the campaign enriches them."
        ),
    )

    def clean_file(self) -> Any:
        upload = self.cleaned_data["file"]
        limit = getattr(settings, "CSV_UPLOAD_MAX_BYTES", 200 * 1024 * 1024)
        if upload.size > limit:
            raise forms.ValidationError(f"The file is {upload.size:,} bytes; the limit is {limit:,}.")
        return upload

    def clean_mapping(self) -> dict[str, str]:
        try:
            return mapping_parse(self.cleaned_data.get("mapping") or "")
        except ImportFileError as exc:
            raise forms.ValidationError(str(exc)) from exc

    def reading(self) -> CsvReading:
        """How to read the uploaded file (call once the form is valid)."""
        return {
            "source": self.cleaned_data["file"].name,
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
            fieldsets.append(("Last import", {"fields": ("last_import_report",), "classes": ("collapse",)}))
        return fieldsets

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        extra = {**(extra_context or {}), "recipient_import_enabled": True}
        return super().change_view(request, object_id, form_url, extra)  # type: ignore[misc]

    @admin.display(description="Last import")
    def last_import_report(self, obj: Campaign) -> str:
        if not obj.import_report:
            return "No import yet."
        lines = report_lines(obj.import_report)
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
        if not model_admin.has_change_permission(request, campaign):
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
            "upload_limit": getattr(settings, "CSV_UPLOAD_MAX_BYTES", 0),
            **extra,
        }

    def import_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        campaign = self._campaign(request, object_id)
        form = RecipientImportForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            try:
                report = campaign_import_file(
                    campaign=campaign,
                    file=form.cleaned_data["file"],
                    actor=Actor("admin", request.user),
                    qualify=form.cleaned_data["qualify"],
                    **form.reading(),
                )
            except ImportFileError as exc:
                form.add_error("file", f"{exc}. Nothing was imported.")
            else:
                model_admin: Any = self
                level = messages.WARNING if report.unparseable_count else messages.SUCCESS
                model_admin.message_user(request, " ".join(report_lines(report.as_dict())[:4]), level)
                return HttpResponseRedirect(reverse("admin:campaigns_campaign_change", args=[campaign.pk]))
        return TemplateResponse(
            request, "admin/campaigns/campaign/import_form.html", self._context(request, campaign, form=form)
        )

    def import_dry_run_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        campaign = self._campaign(request, object_id)
        if request.method != "POST":
            return HttpResponseRedirect(reverse("admin:campaigns_campaign_import", args=[campaign.pk]))
        form = RecipientImportForm(request.POST, request.FILES)
        if form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                result = recipients_dry_run_csv(
                    campaign=campaign, stream=upload, actor=Actor("admin", request.user), **form.reading()
                )
            except ImportFileError as exc:
                form.add_error("file", str(exc))
            else:
                if "as_csv" in request.POST:
                    out = io.StringIO()
                    dry_run_write_csv(result, out)
                    response = HttpResponse(out.getvalue(), content_type="text/csv; charset=utf-8")
                    response["Content-Disposition"] = f'attachment; filename="dry-run-campaign-{campaign.pk}.csv"'
                    return response
                context = self._context(
                    request,
                    campaign,
                    form=RecipientImportForm(),
                    result=result,
                    skip_reasons=sorted(result.skip_reasons.items()),
                    lines=result.lines[:DRY_RUN_SHOWN],
                    more=max(0, len(result.lines) - DRY_RUN_SHOWN),
                    source=upload.name,
                )
                context["title"] = f"Dry run of {upload.name} for {campaign}"
                return TemplateResponse(request, "admin/campaigns/campaign/import_dry_run.html", context)
        return TemplateResponse(
            request, "admin/campaigns/campaign/import_form.html", self._context(request, campaign, form=form)
        )
