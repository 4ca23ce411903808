"""``manage.py run_pipeline [--once] [--campaign ID …]``: move campaigns forward.

The same runner the django-q2 tasks call, inline in this process: for
engineers, cron, or a machine without a queue.  Without ``--once`` it keeps
going, one pass every ``--interval`` seconds, until interrupted.
"""

from __future__ import annotations

import logging
import sys
import time
from collections import Counter
from collections.abc import Mapping
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from campaigns.models import Campaign, CampaignRecipient
from campaigns.pipeline.runner import NOT_PROGRESS, StageRun, campaign_advance, campaign_due, campaigns_with_work
from campaigns.pipeline.sweeper import pipeline_sweep
from common.commands import check_campaign_ids, check_seconds, interrupted_says
from common.fsm import Actor

logger = logging.getLogger(__name__)


# Counts that are no row reaching where the run takes it: a claim lost, a row
# released or put off (NOT_PROGRESS), a proof to redo; and the mailing stage's
# step on the way to the printer (Proofed → SendingStaged), which the same run
# then counts again as Sent or Error.
NOT_MOVED = NOT_PROGRESS | {"reproof"}
ON_THE_WAY = {"mailing": frozenset({str(CampaignRecipient.Status.SENDING_STAGED)})}


def rows_moved(stage: str, moved: Mapping[str, int]) -> int:
    """Rows a stage's batch took to where it takes them, each counted once."""
    skip = NOT_MOVED | ON_THE_WAY.get(stage, frozenset())
    return sum(n for key, n in moved.items() if key not in skip)


class Command(BaseCommand):
    help = "Move active campaigns through qualification, enrichment and proofing, in batches."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--once", action="store_true", help="One pass over every campaign, then exit.")
        parser.add_argument("--campaign", type=int, action="append", help="Only this campaign id (repeatable).")
        parser.add_argument("--batch-size", type=int, default=100, help="Rows per batch (default 100).")
        parser.add_argument("--interval", type=float, default=15.0, help="Seconds between passes (default 15).")
        parser.add_argument("--no-progress", action="store_true", help="Log lines instead of a progress bar.")

    def handle(self, *args: Any, **options: Any) -> None:
        ids = check_campaign_ids(options["campaign"]) or None
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1.")
        interval = check_seconds(options["interval"])
        bar = sys.stdout.isatty() and not options["no_progress"]
        while True:
            with interrupted_says(
                "the batches done are kept; rows this pass had taken go back to their queue when their "
                "lease runs out (at most the lease, 10 minutes by default), and the next run takes them."
            ):
                self.one_pass(ids, options["batch_size"], bar)
            if options["once"]:
                return
            try:
                time.sleep(interval)
            except KeyboardInterrupt:
                return

    def one_pass(self, ids: list[int] | None, batch_size: int, bar: bool) -> None:
        swept = pipeline_sweep(actor=Actor("command:run_pipeline"), campaign_ids=ids)
        if sum(swept.values()):
            self.stdout.write(f"Returned {sum(swept.values())} row(s) whose worker's lease ran out to their queue.")
        campaigns = campaigns_with_work(ids)
        if not campaigns:
            self.stdout.write("Nothing to do: no active campaign has recipients waiting.")
        for campaign in campaigns:
            try:
                self.advance(campaign, batch_size, bar)
            except Exception:
                # One campaign's failure (a bug, a database error) must not stop
                # the others: its claims expire and the sweeper returns them.
                logger.exception("campaign %s: the run failed; moving on to the next campaign", campaign.pk)
                self.stderr.write(f"“{campaign}”: the run failed (see the log); the next pass tries again.")
        for campaign in Campaign.objects.filter(paused=True, pk__in=ids or [c.pk for c in campaigns]):
            self.stdout.write(f"“{campaign}” is paused: nothing moved.")

    def advance(self, campaign: Campaign, batch_size: int, bar: bool) -> None:
        total = sum(campaign_due(campaign).values())
        progress = tqdm(total=total, desc=str(campaign)[:40], unit="row", disable=not bar, leave=True)
        moved: Counter[str] = Counter()

        def on_batch(stage: str, run: StageRun) -> None:
            n = rows_moved(stage, run.moved)
            moved[stage] += n
            if bar:
                progress.update(min(n, max(0, total - progress.n)))
            elif n:
                logger.info("campaign %s %s: %s rows moved (%s)", campaign.pk, stage, n, dict(run.moved))

        report = campaign_advance(
            campaign.pk, actor=Actor("command:run_pipeline"), batch_size=batch_size, on_batch=on_batch
        )
        progress.close()
        summary = ", ".join(f"{stage} {n}" for stage, n in moved.items() if n) or "nothing moved"
        self.stdout.write(f"“{campaign}”: {summary}.")
        for stage, note in report.notes.items():
            self.stdout.write(f"  {stage}: {note}")
        if report.paused:
            self.stdout.write("  paused while running: stopped.")
