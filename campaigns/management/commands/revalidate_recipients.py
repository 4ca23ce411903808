"""``manage.py revalidate_recipients``: the admin's "Re-validate" action, for many rows.

    manage.py revalidate_recipients --campaign 12 --skip-reason International --dry-run

Selects Skipped and Blacklisted recipients (``--status`` to choose; others
are counted as not eligible), of some campaigns, optionally with one skip
reason, and re-validates them in batches of ids through
``campaigns.revalidation.recipients_revalidate``: back to Pending, the data
checked again, the rows that pass qualified again.  History rows name
``command:revalidate_recipients``.  Safe twice: a row whose data is still
wrong is Skipped again, and re-validating it again changes nothing but its
history.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from campaigns.management.commands._backfill import add_common_arguments, choice, run_batches, selection
from campaigns.models import CampaignRecipient
from campaigns.revalidation import REVALIDATED_FROM, recipients_revalidate
from common.fsm import Actor

ACTOR = "command:revalidate_recipients"


def revalidated_message(selected: int, outcome: Counter[str]) -> str:
    """The admin action's message."""
    moved = sum(outcome.values())
    summary = ", ".join(f"{status}: {n}" for status, n in sorted(outcome.items())) or "nothing moved"
    left = f" {selected - moved} left as they were (not eligible)." if selected - moved else ""
    return f"Re-validated {moved} recipient(s): {summary}.{left}"


class Command(BaseCommand):
    help = "Re-validate Skipped and Blacklisted recipients in batches (as the admin's Re-validate action does)."

    def add_arguments(self, parser: CommandParser) -> None:
        add_common_arguments(
            parser, statuses_help="Only recipients in this status (repeatable; default Skipped and Blacklisted)."
        )
        parser.add_argument("--skip-reason", help="Only Skipped recipients with this skip reason, spelled exactly.")

    def handle(self, *args: Any, **options: Any) -> None:
        filters = {}
        if options["skip_reason"] is not None:
            valid = list(CampaignRecipient.SkipReason.values)
            filters["skip_reason"] = choice(options["skip_reason"], valid, "--skip-reason")
        queryset = selection(options, default_statuses=REVALIDATED_FROM, **filters)
        actor = Actor(ACTOR)
        selected, outcome = 0, Counter[str]()
        for ids, batch in run_batches(
            "revalidate_recipients",
            queryset,
            options,
            lambda ids: recipients_revalidate(queryset=CampaignRecipient.objects.filter(pk__in=ids), actor=actor),
            lambda o: revalidated_message(sum(o.values()), o),
        ):
            selected += len(ids)
            outcome.update(batch)
        if options["dry_run"]:
            self.stdout.write("Dry run: nothing was written. A run now would do this:")
        if not selected:
            self.stdout.write("No recipients match.")
            return
        self.stdout.write(revalidated_message(selected, outcome))
