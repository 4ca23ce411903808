"""``manage.py refresh_mailpieces [--stale-days N] [--printer KIND] [--dry-run] [--limit N]``.

Asks the printers about mailpieces they have sent no status for in N days
(default 7) and applies what they say through the webhooks' monotonic path
(mailpieces/webhooks/refresh.py): a backfill for lost webhooks, safe to run
again (what was heard before is recorded once).
"""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from mailpieces.webhooks.refresh import DEFAULT_STALE_DAYS, MAX_AGE_DAYS, mailpieces_refresh
from printers.kinds import PrinterKind

# Without a terminal: one progress line per this many pieces.
LOG_EVERY = 100
# A hundred years: --stale-days 99999999 was a date before the calendar's start.
MOST_DAYS = 36_500


class Command(BaseCommand):
    help = (
        "Ask the printers about mailpieces with no status report for N days (not Cancelled, Error or Test) "
        "and apply what they say, as a webhook would."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--stale-days",
            type=int,
            default=DEFAULT_STALE_DAYS,
            help=f"Ask about pieces with no report or status change for this many days (default {DEFAULT_STALE_DAYS}).",
        )
        parser.add_argument("--printer", help=f"Only this printer: one of {', '.join(PrinterKind.values)}.")
        parser.add_argument("--limit", type=int, help="Ask about at most this many pieces in this run.")
        parser.add_argument(
            "--max-age-days",
            type=int,
            default=MAX_AGE_DAYS,
            help=f"Leave pieces older than this many days alone: settled, or for a person (default {MAX_AGE_DAYS}).",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Ask the printers and report what would change; change nothing."
        )
        parser.add_argument("--no-progress", action="store_true", help="Log lines instead of a progress bar.")

    def handle(self, *args: Any, **options: Any) -> None:
        printer = options["printer"]
        if printer is not None and printer not in PrinterKind.values:
            raise CommandError(f"Unknown printer {printer!r}: use one of {', '.join(PrinterKind.values)}.")
        for name in ("stale_days", "max_age_days"):
            if options[name] < 0:
                raise CommandError(f"--{name.replace('_', '-')} must be 0 or more.")
            if options[name] > MOST_DAYS:  # a date that far back is past the calendar's start
                raise CommandError(f"--{name.replace('_', '-')} must be at most {MOST_DAYS} days.")
        if options["stale_days"] > options["max_age_days"]:
            raise CommandError(
                f"--stale-days {options['stale_days']} is more than --max-age-days {options['max_age_days']}: "
                "no piece can be both, so nothing would be asked."
            )
        if options["limit"] is not None and options["limit"] < 1:
            raise CommandError("--limit must be at least 1.")
        bar = sys.stdout.isatty() and not options["no_progress"]
        with tqdm(total=0, unit="piece", disable=not bar) as progress:

            def on_progress(kind: str, done: int, total: int) -> None:
                if bar:
                    if progress.total != total:
                        progress.total = total
                    progress.set_description(PrinterKind(kind).label)
                    progress.update(1)
                elif done % LOG_EVERY == 0 or done == total:
                    self.stdout.write(f"  asked about {done} of {total} pieces")

            report = mailpieces_refresh(
                stale_days=options["stale_days"],
                printer=printer,
                limit=options["limit"],
                dry_run=options["dry_run"],
                max_age_days=options["max_age_days"],
                progress=on_progress,
            )
        if printer is not None and report.printers and report.printers[0].skipped:
            raise CommandError(f"{report.printers[0].label} cannot be asked: {report.printers[0].skipped}.")
        if options["dry_run"]:
            self.stdout.write("Dry run: the printers were asked, nothing was changed.")
        if not report.printers:
            scope = f" at {PrinterKind(printer).label}" if printer else ""
            self.stdout.write(f"No stale mailpieces{scope}: nothing to ask.")
            return
        limit = options["limit"]
        used_up = limit is not None and sum(r.asked for r in report.printers) >= limit
        for result in report.printers:
            line = f"{result}."
            if result.asked == 0 and not result.skipped:
                line = (
                    f"Did not ask {result.label}: the --limit of {limit} was used up first."
                    if used_up
                    else f"No stale mailpieces at {result.label}: nothing to ask."
                )
            self.stdout.write(line)
            for error in result.errors:
                self.stdout.write(f"  {result.label} said: {error}")
        if report.failed:
            # A non-zero exit, so cron or the person running it notices.
            raise CommandError(f"{report.failed} lookups failed: the next run asks about those pieces again.")
