"""``manage.py reprocess_webhooks --printer KIND --since DATE [--until DATE] [--dry-run]``.

Re-reads stored deliveries after a parsing or mapping fix, idempotently
(mailpieces/webhooks/reprocess.py): applied reports stand, the others are
decided again, quarantined deliveries that now read are processed.
"""

from __future__ import annotations

import datetime as dt
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from tqdm import tqdm

from common.commands import interrupted_says
from mailpieces.webhooks.reprocess import reprocess_queryset, webhooks_reprocess
from printers.kinds import PrinterKind


def moment(value: str) -> dt.datetime:
    """A date (2026-11-01) or a date and time (2026-11-01T08:00, UTC unless it says)."""
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise CommandError(f"{value!r} is not a date like 2026-11-01 or 2026-11-01T08:00.") from None
    try:
        return parsed.astimezone(dt.UTC) if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    except OverflowError:  # 9999-12-31T23:59-05:00 is past the last date in UTC
        raise CommandError(f"{value!r} is out of the range of dates.") from None


class Command(BaseCommand):
    help = "Re-read a printer's stored webhooks (after a mapping fix) and apply what they say, idempotently."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--printer", required=True, help=f"One of: {', '.join(PrinterKind.values)}.")
        parser.add_argument("--since", required=True, help="Deliveries received from this date (2026-11-01).")
        parser.add_argument("--until", help="… and before this date (default: now).")
        parser.add_argument("--dry-run", action="store_true", help="Report what would change; change nothing.")
        parser.add_argument("--no-progress", action="store_true", help="No progress bar.")

    def handle(self, *args: Any, **options: Any) -> None:
        printer = options["printer"]
        if printer not in PrinterKind.values:
            raise CommandError(f"Unknown printer {printer!r}: use one of {', '.join(PrinterKind.values)}.")
        since = moment(options["since"])
        until = moment(options["until"]) if options["until"] else None
        if until is not None and until <= since:
            raise CommandError("--until must be after --since.")
        if since > timezone.now():
            raise CommandError("--since is in the future: no delivery was received then.")
        total = reprocess_queryset(printer=printer, since=since, until=until).count()
        if not total:
            self.stdout.write(f"No stored {PrinterKind(printer).label} webhooks in that period: nothing to do.")
            return
        bar = sys.stdout.isatty() and not options["no_progress"]
        with (
            interrupted_says("the batches done are kept (each is idempotent); run the same command again."),
            tqdm(total=total, unit="delivery", disable=not bar) as progress,
        ):
            report = webhooks_reprocess(
                printer=printer, since=since, until=until, dry_run=options["dry_run"], progress=progress.update
            )
        prefix = "Dry run, nothing changed: " if options["dry_run"] else ""
        self.stdout.write(f"{prefix}{report}.")
