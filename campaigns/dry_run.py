"""Dry run: what an import would do to each row, in plain words, writing nothing.

The rows go through the real code (sync, then the import's stages without
the paid address lookups) inside a transaction that is rolled back, so the
preview cannot drift from what the import does.  The price is that the
per-row outcome list is held in memory: a dry run is for looking at a file,
not for a million-row load.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import IO, Any, TextIO

from django.db import transaction

from campaigns.audience import campaign_qualify_and_enrich
from campaigns.importing import Columns, CsvSource, field_words
from campaigns.models import Campaign, CampaignRecipient
from campaigns.recipient_json import APPROVAL_ERRORS, VALIDATION_ERRORS
from campaigns.sync import ImportReport, recipients_sync
from common.fsm import Actor

Status = CampaignRecipient.Status

# Outcome labels, in display order.
STAGED = "Will be staged"
HOLDOUT = "Holdout"
ENRICH = "Address enrichment"
SKIPPED = "Skipped"
BLACKLISTED = "Blacklisted"
UPDATED = "Will be updated"
ALREADY = "Already imported"
IN_FLIGHT = "Not updated: already in flight"
DUPLICATE = "Duplicate in file"
UNPARSEABLE = "Unparseable line"
OUTCOMES = (STAGED, HOLDOUT, ENRICH, SKIPPED, BLACKLISTED, UPDATED, ALREADY, IN_FLIGHT, DUPLICATE, UNPARSEABLE)
LINES_NAMED = 10  # lines a warning lists before "and N more"


@dataclass(frozen=True)
class DryRunLine:
    line: int | None
    name: str
    outcome: str
    message: str  # the sentence shown to people: "Skipped: zip is empty"
    skip_reason: str = ""
    # The recipient's status, for a caller that says it in other words (the
    # admin): before this run for a row already in the campaign (``was``),
    # after it (``status``), and for a created or updated row its outcome's
    # own sentence (``then``; empty when that sentence is only the status's
    # name).
    was: str = ""
    status: str = ""
    then: str = ""


@dataclass
class DryRunResult:
    lines: list[DryRunLine] = field(default_factory=list)
    totals: Counter[str] = field(default_factory=Counter)
    skip_reasons: Counter[str] = field(default_factory=Counter)
    report: ImportReport = field(default_factory=ImportReport)
    columns: Columns | None = None  # which column went to which field (a CSV file)
    delimiter: str = ","
    warnings: list[str] = field(default_factory=list)

    def ordered_totals(self) -> list[tuple[str, int]]:
        return [(o, self.totals[o]) for o in OUTCOMES if self.totals[o]]


def _percent(value: Decimal) -> str:
    return f"{value.normalize():f}"


def _sentence(campaign: Campaign, r: CampaignRecipient) -> tuple[str, str]:
    status = r.status
    if status in (Status.PROOFING_STAGED,):
        return STAGED, f"Will be staged for printer {campaign.printer}"
    if status == Status.HOLDOUT:
        return HOLDOUT, f"Holdout: {_percent(campaign.holdout_percent)} % control group"
    if status == Status.ADDRESS_ENRICHABLE:
        return ENRICH, "Address enrichment: the street address is empty, the address will be looked up"
    if status == Status.BLACKLISTED:
        return BLACKLISTED, "Blacklisted: the address or email is on the organization's blocklist"
    if status == Status.SKIPPED:
        return SKIPPED, "Skipped: " + _skip_words(campaign, r)
    return str(status), f"{r.get_status_display()}"


def _skip_words(campaign: Campaign, r: CampaignRecipient) -> str:
    data: Mapping[str, Any] = r.json or {}
    if data.get(VALIDATION_ERRORS):
        return "; ".join(field_words(e["message"]) for e in data[VALIDATION_ERRORS])
    if data.get(APPROVAL_ERRORS):
        details = "; ".join(str(e.get("msg", e)) for e in data[APPROVAL_ERRORS])
        return f"printer {campaign.printer} does not accept it: {details}"
    if r.skip_reason == CampaignRecipient.SkipReason.CAP_EXCEEDED:
        cap = campaign.organization.recipient_cap
        return f"the organization's cap of {cap} recipients per campaign is reached"
    if r.skip_reason == CampaignRecipient.SkipReason.NO_ADDRESS:
        return "the street address is empty and address enrichment is off for this campaign"
    return str(r.get_skip_reason_display() or r.skip_reason)


def _name(r: CampaignRecipient | None) -> str:
    if r is None:
        return ""
    return f"{r.first_name} {r.last_name}".strip() or r.company


def _lines_named(lines: list[int]) -> str:
    named = ", ".join(str(n) for n in lines[:LINES_NAMED])
    return named + (f" and {len(lines) - LINES_NAMED} more" if len(lines) > LINES_NAMED else "")


def recipients_dry_run(
    *,
    campaign: Campaign,
    rows: Iterable[Mapping[str, Any]],
    actor: Actor,
    report: ImportReport | None = None,
    update: bool = False,
) -> DryRunResult:
    """Sync + qualification of ``rows`` with everything rolled back."""
    report = report or ImportReport(source="dry run")
    report.trail = []
    result = DryRunResult(report=report)
    with transaction.atomic():
        recipients_sync(campaign=campaign, rows=rows, actor=actor, report=report, save_report=False, update=update)
        # Rows already in the campaign are shown with their status before this run.
        present = [ref for _, _, kind, ref in report.trail if kind in ("already_present", "updated", "in_flight")]
        before: dict[int, str] = {}
        for start in range(0, len(present), 2000):
            chunk = present[start : start + 2000]
            before.update(CampaignRecipient.objects.filter(pk__in=chunk).values_list("id", "status"))
        # The stages the import runs, minus the address lookups: a preview
        # makes no paid calls (those rows show as "Address enrichment").
        stages = campaign_qualify_and_enrich(campaign=campaign, actor=actor, enrich=False)
        report.qualification = dict(sorted(stages.qualification.items()))
        ids = [ref for _, _, _, ref in report.trail if ref is not None]
        found: dict[int, CampaignRecipient] = {}
        for start in range(0, len(ids), 2000):
            found.update(
                (r.pk, r)
                for r in CampaignRecipient.objects.filter(pk__in=ids[start : start + 2000]).only(
                    "id", "first_name", "last_name", "company", "status", "skip_reason", "json", "state", "country"
                )
            )
        transaction.set_rollback(True)
    report.dry_run = True
    first_line: dict[str, int | None] = {}  # natural key -> the line that brought it
    no_state: list[int] = []
    for line, key, kind, ref in report.trail:
        r = found.get(ref) if ref is not None else None
        was_status = before.get(ref, "") if ref is not None else ""
        was = Status(was_status).label if was_status else "unknown"
        status = r.status if r is not None else ""
        if kind != "duplicate_in_file":
            first_line.setdefault(key, line)
        if kind in ("created", "updated") and r is not None:
            if r.country == "US" and not r.state and line is not None:
                no_state.append(line)
            outcome, message = _sentence(campaign, r)
            reason = r.skip_reason if outcome == SKIPPED else ""
            then = "" if message == r.get_status_display() else message  # the default: only the status's name
            if kind == "updated":
                outcome, message = UPDATED, f"Will be updated (in the campaign as {was}), then: {message}"
            entry = DryRunLine(line, _name(r), outcome, message, reason, was_status, status, then)
        elif kind == "already_present":
            message = f"Already imported: in the campaign as {was}; left as is"
            entry = DryRunLine(line, _name(r), ALREADY, message, was=was_status, status=status)
        elif kind == "in_flight":
            message = f"Not updated: already in flight (in the campaign as {was}); left as is"
            entry = DryRunLine(line, _name(r), IN_FLIGHT, message, was=was_status, status=status)
        else:
            original = first_line.get(key)
            where = f" (line {original})" if original is not None else ""
            entry = DryRunLine(
                line, _name(r), DUPLICATE, f"Duplicate in file: the same person appears on an earlier line{where}"
            )
        result.lines.append(entry)
    if no_state:
        result.warnings.append(
            f"{len(no_state)} {'row' if len(no_state) == 1 else 'rows'} in the United States "
            f"{'has' if len(no_state) == 1 else 'have'} no state (line{'s' if len(no_state) > 1 else ''} "
            f"{_lines_named(no_state)}): printers need the state on a US address. "
            "Check that the file has a state column, and pick it below if it was not recognised."
        )
    for problem in report.unparseable:
        result.lines.append(DryRunLine(problem["line"], "", UNPARSEABLE, f"Unparseable line: {problem['message']}"))
    result.lines.sort(key=lambda e: (e.line is None, e.line or 0))
    for entry in result.lines:
        result.totals[entry.outcome] += 1
        if entry.skip_reason:
            result.skip_reasons[entry.skip_reason] += 1
    # Lines past the report's cap of kept problem lines are counted, not listed.
    result.totals[UNPARSEABLE] += report.unparseable_count - len(report.unparseable)
    report.trail = None
    return result


def recipients_dry_run_csv(
    *,
    campaign: Campaign,
    stream: IO[bytes],
    actor: Actor,
    mapping: Mapping[str, str] | None = None,
    default_country: str = "",
    source: str = "csv",
    update: bool = False,
) -> DryRunResult:
    report = ImportReport(source=source)
    rows = CsvSource(
        stream, report, mapping=mapping, enrichment=campaign.address_enrichment, default_country=default_country
    )
    result = recipients_dry_run(campaign=campaign, rows=rows, actor=actor, report=report, update=update)
    result.columns, result.delimiter = rows.columns, rows.delimiter
    return result


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\0")


def csv_safe(value: Any) -> str:
    """A cell a spreadsheet will show as text: a leading ``'`` before anything
    that could start a formula (OWASP CSV injection), on top of CSV quoting."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def dry_run_write_csv(result: DryRunResult, out: TextIO) -> None:
    writer = csv.writer(out)
    writer.writerow(["line", "name", "outcome", "skip_reason", "message"])
    for e in result.lines:
        writer.writerow([e.line or "", csv_safe(e.name), e.outcome, e.skip_reason, csv_safe(e.message)])


def dry_run_text(result: DryRunResult) -> list[str]:
    """Human-readable lines: one per row, then the totals."""
    out = [f"line {e.line or '-':>6}  {e.name[:30]:<30}  {e.message}" for e in result.lines]
    out.append("")
    out.append("Totals:")
    out += [f"  {outcome:<20} {count}" for outcome, count in result.ordered_totals()]
    out += [f"    {reason:<18} {count}" for reason, count in sorted(result.skip_reasons.items())]
    return out


def dry_run_columns_text(result: DryRunResult) -> list[str]:
    """The columns used and not used, and the warnings, for the command."""
    out: list[str] = []
    if result.columns is not None:
        out.append("Columns:")
        out += [f"  {column!r} -> {label}" for column, label in result.columns.used()]
        if result.columns.ignored():
            out.append("  not used for the address: " + ", ".join(repr(h) for h in result.columns.ignored()))
    out += [f"Warning: {w}" for w in result.warnings]
    return out
