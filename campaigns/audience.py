"""One entry point for an audience file: read, sync, qualify, enrich, qualify.

``campaign_import_file`` is what the admin's import page, ``manage.py
import_recipients`` and the demo call; ``campaign_qualify_and_enrich`` holds
the order of the stages after the sync, so the dry run (which stops before
the paid enrichment lookups) cannot drift from the import either.

The order matters: qualification sends rows without an address to
AddressEnrichable; enrichment brings the ones it finds back to Pending; the
second qualification stages them (or blocks, holds out, caps them) by the
same rules as everyone else.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import IO, Any, Unpack

from campaigns.enrichment.base import EnrichmentError
from campaigns.enrichment.service import campaign_enrich
from campaigns.importing import CsvReading, CsvSource, recipients_import_csv
from campaigns.models import Campaign
from campaigns.qualification import campaign_qualify
from campaigns.sync import ImportReport, campaign_save_import_report
from common.fsm import Actor

ENRICH_BATCH_SIZE = 100  # lookups per claim: a crash loses at most one batch's lease


@dataclass
class FileImportReport(ImportReport):
    """The sync's report plus what enrichment did (counts per outcome, and
    ``stopped`` with the reason when a configuration error ended it)."""

    enrichment: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {**super().as_dict(), "enrichment": self.enrichment}


@dataclass
class StageCounts:
    """Moves made after the sync: qualification (both passes added up) and enrichment."""

    qualification: Counter[str] = field(default_factory=Counter)
    enrichment: Counter[str] = field(default_factory=Counter)
    enrichment_stopped: str = ""


def _enrich_all(campaign: Campaign, actor: Actor, counts: StageCounts) -> None:
    """Enrichment batches until one claims nothing.  A row whose lookup asked
    for a retry keeps a lease in the future, so it is not claimed again here
    and the loop ends; a later run picks it up."""
    while True:
        try:
            result = campaign_enrich(campaign=campaign, actor=actor, batch_size=ENRICH_BATCH_SIZE)
        except EnrichmentError as exc:  # no client at all (bad backend or credentials)
            counts.enrichment_stopped = exc.message
            return
        stopped = result.pop("stopped", "")
        counts.enrichment.update(result)
        if stopped:
            counts.enrichment_stopped = stopped
            return
        if not sum(result.values()):
            return


def campaign_qualify_and_enrich(
    *, campaign: Campaign, actor: Actor, enrich: bool = True, batch_size: int = 2000
) -> StageCounts:
    """Qualify the campaign's Pending recipients; when the campaign enriches
    addresses (and ``enrich``), enrich the ones without an address and qualify
    those that came back Pending."""
    counts = StageCounts()
    counts.qualification.update(campaign_qualify(campaign=campaign, actor=actor, batch_size=batch_size).moved)
    if enrich and campaign.address_enrichment:
        _enrich_all(campaign, actor, counts)
        counts.qualification.update(campaign_qualify(campaign=campaign, actor=actor, batch_size=batch_size).moved)
    return counts


def campaign_import_file(
    *,
    campaign: Campaign,
    file: IO[bytes],
    actor: Actor,
    qualify: bool = True,
    batch_size: int = 2000,
    progress: Callable[[CsvSource, ImportReport], None] | None = None,
    update: bool = False,
    **reading: Unpack[CsvReading],
) -> FileImportReport:
    """Import a CSV byte stream into ``campaign`` and run the stages after it.

    A file-level problem raises ``ImportFileError`` (nothing imported); row
    problems end up in the report or as Skipped recipients.  The report is
    saved on the campaign after the sync and again after the stages, so an
    interruption during qualification still leaves the import's counts.
    ``qualify=False`` leaves valid rows Pending (and so not enriched either);
    ``reading`` says how to read the file (its name, a column mapping, a
    default country); ``update`` lets rows change the recipients they match
    while those are not yet in flight (Pending, Skipped, Blacklisted).
    """
    report = FileImportReport(source=reading.get("source") or "csv")
    recipients_import_csv(
        campaign=campaign,
        stream=file,
        actor=actor,
        report=report,
        batch_size=batch_size,
        progress=progress,
        update=update,
        **reading,
    )
    if qualify:
        counts = campaign_qualify_and_enrich(campaign=campaign, actor=actor, batch_size=batch_size)
        report.qualification = dict(sorted(counts.qualification.items()))
        report.enrichment = dict(sorted(counts.enrichment.items()))
        if counts.enrichment_stopped:
            report.enrichment["stopped"] = counts.enrichment_stopped
        campaign_save_import_report(campaign=campaign, report=report)
    return report


def report_headline(report: Mapping[str, Any]) -> str:
    """The import's outcome in one sentence.  A finished import that changed
    no recipient never says "complete": it says nothing was imported, and why."""
    source = report.get("source", "?")
    status = report.get("status", "?")
    if status != "complete" or "created" not in report:  # no counts to judge by
        return f"Import of {source}: {status}"
    created, updated = report.get("created", 0), report.get("updated", 0)
    if created or updated:
        return f"Import of {source}: complete"
    rows = report.get("rows_read", 0)
    if not rows and not report.get("unparseable_count", 0):
        why = "the file has column names but no rows"
    elif not rows:
        why = "no line of the file could be read"
    elif report.get("in_flight", 0) and report.get("in_flight", 0) + report.get("already_present", 0) >= rows:
        # Not "being printed": a control-group or delivered row is past that point too.
        why = "every row is already in the campaign, some past the point where an import may change them"
    elif report.get("already_present", 0) + report.get("duplicates_in_file", 0) >= rows:
        why = "every row is already in the campaign"
    else:
        why = "no row could be imported"
    return f"Import of {source}: nothing imported ({why})"


def report_lines(report: Mapping[str, Any]) -> list[str]:
    """A saved import report (``Campaign.import_report``) in a few lines, for
    the command's output and the admin."""
    lines = [
        report_headline(report),
        f"  rows read {report.get('rows_read', 0)}, created {report.get('created', 0)}, "
        f"already imported {report.get('already_present', 0)}, "
        f"duplicates in file {report.get('duplicates_in_file', 0)}, "
        f"unparseable lines {report.get('unparseable_count', 0)}",
    ]
    if report.get("updated", 0) or report.get("in_flight", 0):
        lines.append(
            f"  updated {report.get('updated', 0)}, "
            f"not updated because already in flight (being printed or mailed) {report.get('in_flight', 0)}"
        )
    enrichment = dict(report.get("enrichment") or {})
    stopped = enrichment.pop("stopped", "")
    sections = (
        ("by status", report.get("by_status")),
        ("skip reasons", report.get("by_skip_reason")),
        ("qualified", report.get("qualification")),
        ("address lookups", enrichment),
    )
    for title, counts in sections:
        if counts:
            lines.append(f"  {title}: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in counts.items()))
    if stopped:
        lines.append(f"  address lookups stopped: {stopped}")
    problems = report.get("unparseable", [])
    lines += [f"  line {p['line']}: {p['message']}" for p in problems]
    if report.get("unparseable_count", 0) > len(problems):
        lines.append(f"  ... and {report['unparseable_count'] - len(problems)} more unparseable lines")
    lines += [f"  error: {e}" for e in report.get("errors", [])]
    return lines
