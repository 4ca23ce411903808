"""``manage.py process_webhooks [--once]``: apply stored printer webhooks.

The same processing the django-q2 task runs, inline in this process: for
engineers, cron, or a machine without a queue.  Without ``--once`` it keeps
going, one pass every ``--interval`` seconds (15, the spec's), until
interrupted.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from common.commands import check_seconds, interrupted_says
from mailpieces.webhooks.processing import BATCH_SIZE, ProcessReport, webhooks_pending_count, webhooks_process


class Command(BaseCommand):
    help = "Apply the printers' stored webhooks to mailpieces, in batches."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--once", action="store_true", help="Empty the inbox once, then exit.")
        parser.add_argument(
            "--batch-size", type=int, default=BATCH_SIZE, help=f"Deliveries per batch (default {BATCH_SIZE})."
        )
        parser.add_argument("--interval", type=float, default=15.0, help="Seconds between passes (default 15).")
        parser.add_argument("--no-progress", action="store_true", help="Log lines instead of a progress bar.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1.")
        interval = check_seconds(options["interval"])
        bar = sys.stdout.isatty() and not options["no_progress"]
        while True:
            with interrupted_says(
                "the batches applied are kept; the deliveries of the batch under way are taken again when "
                "their lease runs out (5 minutes), by the next run or the schedule."
            ):
                self.one_pass(options["batch_size"], bar)
            if options["once"]:
                return
            try:
                time.sleep(interval)
            except KeyboardInterrupt:
                return

    def one_pass(self, batch_size: int, bar: bool) -> ProcessReport:
        pending = webhooks_pending_count()
        with tqdm(total=pending, unit="delivery", disable=not bar) as progress:

            def batch_done(report: ProcessReport) -> None:
                progress.update(report.deliveries + report.quarantined)
                if not bar and report.deliveries:
                    self.stdout.write(f"  {report}")

            total = webhooks_process(batch_size=batch_size, on_batch=batch_done)
        if total.deliveries or total.adopted or total.quarantined or total.failed:
            self.stdout.write(f"Webhooks: {total}.")
        else:
            self.stdout.write("Nothing to do: no webhook is waiting.")
        if total.quarantined:
            self.stdout.write(
                f"{total.quarantined} deliveries could not be read and are quarantined: "
                "see Inbound webhooks in the admin."
            )
        return total
