"""``manage.py retry_recipients``: the admin's two retry actions, for many rows.

    manage.py retry_recipients --campaign 12 --error-message "Failed submission to Printer" --dry-run

Selects Error recipients (``--status`` to choose others: they are counted as
not eligible), of some campaigns, with one of the spec's error messages, and
in batches of ids hands each batch first to the proofing stage's retry
(``campaigns.proofing.retry``) and then what it left to the mailing stage's
(``campaigns.mailing.retry``): each service takes only its own stage's
errors.  ``--stage`` runs one of them only.  History rows name
``command:retry_recipients``.  Safe twice: a retried row is no longer in
Error, so a second run retries nothing.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from campaigns.mailing.retry import SendRetryReport, recipients_retry_sending
from campaigns.management.commands._backfill import add_common_arguments, choice, run_batches, selection
from campaigns.models import CampaignRecipient, ErrorMessages
from campaigns.proofing.retry import RetryReport, recipients_retry_proofing
from common.fsm import Actor

Status = CampaignRecipient.Status
ACTOR = "command:retry_recipients"
STAGES = ("proofing", "mailing")


@dataclass
class Retried:
    """One batch's reports, or the sum of all batches'.  ``None`` for a stage
    that did not run."""

    proofing: RetryReport | None = None
    mailing: SendRetryReport | None = None
    stages: tuple[str, ...] = STAGES
    selected: int = 0

    def add(self, other: Retried) -> None:
        self.selected += other.selected
        for name in self.stages:
            mine, theirs = getattr(self, name), getattr(other, name)
            if theirs is None:
                continue
            if mine is None:
                mine = RetryReport() if name == "proofing" else SendRetryReport()
                setattr(self, name, mine)
            mine.retried += theirs.retried
            mine.not_eligible.update(theirs.not_eligible)
            if isinstance(mine, SendRetryReport) and isinstance(theirs, SendRetryReport):
                mine.new_keys += theirs.new_keys

    @property
    def retried(self) -> int:
        return sum(r.retried for r in (self.proofing, self.mailing) if r is not None)

    def not_eligible(self) -> Counter[str]:
        """Why the rows no stage took were left: the last stage's reasons (the
        first hands every row it leaves on to the second)."""
        last = self.mailing if "mailing" in self.stages else self.proofing
        reasons: Counter[str] = Counter(last.not_eligible if last is not None else {})
        if self.stages == STAGES and reasons["not a mailing error"]:
            reasons["not a proofing or mailing error"] = reasons.pop("not a mailing error")
        return +reasons

    def lines(self) -> list[str]:
        """The admin's messages, per stage, and the total."""
        out = []
        if self.proofing is not None:
            # Handed on to the mailing stage when it runs too, so not "not eligible" yet.
            shown = RetryReport(retried=self.proofing.retried) if self.mailing is not None else self.proofing
            out.append(f"Retry from proofing: {shown.summary()}.")
        if self.mailing is not None:
            out.append(f"Retry sending: {self.mailing.summary()}.")
        reasons = self.not_eligible()
        total = f"{self.retried} retried"
        if self.mailing is not None and self.mailing.new_keys:
            total += f" ({self.mailing.new_keys} under a new key)"
        if reasons:
            parts = ", ".join(f"{n} {why}" for why, n in reasons.most_common())
            total += f", {sum(reasons.values())} not eligible: {parts}"
        out.append(f"Total: {total}.")
        return out


def retry_batch(ids: list[int], *, stages: tuple[str, ...], actor: Actor) -> Retried:
    """One batch through the stages' retries: the proofing stage first, then
    the rows it did not move to the mailing stage."""
    result = Retried(stages=stages, selected=len(ids))
    rows = CampaignRecipient.objects.filter
    left = ids
    if "proofing" in stages:
        errors = set(rows(pk__in=ids, status=Status.ERROR).values_list("pk", flat=True))
        result.proofing = recipients_retry_proofing(queryset=rows(pk__in=ids), actor=actor)
        moved = errors - set(rows(pk__in=errors, status=Status.ERROR).values_list("pk", flat=True))
        left = [pk for pk in ids if pk not in moved]
    if "mailing" in stages:
        result.mailing = recipients_retry_sending(queryset=rows(pk__in=left), actor=actor)
    return result


class Command(BaseCommand):
    help = "Retry Error recipients in batches through the proofing and mailing stages' retries (as the admin does)."

    def add_arguments(self, parser: CommandParser) -> None:
        add_common_arguments(parser, statuses_help="Only recipients in this status (repeatable; default Error).")
        parser.add_argument(
            "--error-message", help="Only recipients with this error message, exactly as the spec spells it."
        )
        parser.add_argument(
            "--stage", choices=(*STAGES, "both"), default="both", help="Which stage's retry to run (default both)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        filters = {}
        if options["error_message"] is not None:
            valid = sorted(ErrorMessages.all().values())
            filters["error_message"] = choice(options["error_message"], valid, "--error-message")
        queryset = selection(options, default_statuses=[Status.ERROR], **filters)
        stages = STAGES if options["stage"] == "both" else (options["stage"],)
        actor = Actor(ACTOR)
        total = Retried(stages=stages)
        for _ids, batch in run_batches(
            "retry_recipients",
            queryset,
            options,
            lambda ids: retry_batch(ids, stages=stages, actor=actor),
            lambda r: f"{r.retried} retried",
        ):
            total.add(batch)
        if options["dry_run"]:
            self.stdout.write("Dry run: nothing was written. A run now would do this:")
        if not total.selected:
            self.stdout.write("No recipients match.")
            return
        for line in total.lines():
            self.stdout.write(line)
