"""What ``retry_recipients`` and ``revalidate_recipients`` share: choosing the
rows, walking them in batches of ids, the progress bar, and ``--dry-run``.

(The leading underscore keeps Django from listing this module as a command.)

Each batch is one call of the service, so one transaction of at most
``--batch-size`` rows: 4,000 rows are never one transaction, and a run
stopped midway has done whole batches.  Batches go by increasing id from
the last one done, so a row a batch moved is never seen twice even when it
still matches the selection.  ``--dry-run`` runs each batch exactly as a
real run would and rolls it back: the services decide what is eligible,
nothing here repeats their rules.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from django.core.management.base import CommandError, CommandParser
from django.db import transaction
from django.db.models import QuerySet
from tqdm import tqdm

from campaigns.models import CampaignRecipient
from common.commands import check_campaign_ids

logger = logging.getLogger(__name__)

T = TypeVar("T")


def add_common_arguments(parser: CommandParser, *, statuses_help: str) -> None:
    parser.add_argument("--campaign", type=int, action="append", help="Only this campaign id (repeatable).")
    parser.add_argument("--status", action="append", help=statuses_help)
    parser.add_argument("--dry-run", action="store_true", help="Say what would happen; write nothing.")
    parser.add_argument("--batch-size", type=int, default=500, help="Rows per batch and transaction (default 500).")
    parser.add_argument("--no-progress", action="store_true", help="Log lines instead of a progress bar.")


def choice(value: str, valid: Sequence[str], option: str) -> str:
    """``value`` if it is one of ``valid`` (spelled exactly), else a
    CommandError listing them all."""
    if value in valid:
        return value
    listed = "\n".join(f"  {v}" for v in valid)
    raise CommandError(f"{option} {value!r} is not one of the valid values (spelled exactly):\n{listed}")


def selection(
    options: dict[str, Any], *, default_statuses: Sequence[str], **filters: Any
) -> QuerySet[CampaignRecipient]:
    """The recipients the options select: campaigns (each must exist),
    statuses (default ``default_statuses``) and ``filters``."""
    if options["batch_size"] < 1:
        raise CommandError("--batch-size must be at least 1.")
    queryset = CampaignRecipient.objects.all()
    ids = check_campaign_ids(options["campaign"])
    if ids:
        queryset = queryset.filter(campaign_id__in=ids)
    valid = list(CampaignRecipient.Status.values)
    statuses = [choice(s, valid, "--status") for s in options["status"] or default_statuses]
    return queryset.filter(status__in=statuses, **filters)


def id_batches(queryset: QuerySet[CampaignRecipient], size: int) -> Iterator[list[int]]:
    """The ids of ``queryset`` in batches of ``size``, by increasing id, each
    batch read after the previous one was processed."""
    last = 0
    while True:
        ids = list(queryset.filter(pk__gt=last).order_by("pk").values_list("pk", flat=True)[:size])
        if not ids:
            return
        yield ids
        last = ids[-1]


def run_batches(
    command: str,
    queryset: QuerySet[CampaignRecipient],
    options: dict[str, Any],
    process: Callable[[list[int]], T],
    describe: Callable[[T], str],
) -> Iterator[tuple[list[int], T]]:
    """Run ``process`` on each batch of ids, with a progress bar on a terminal
    (a log line per batch otherwise); inside a rolled-back transaction with
    ``--dry-run``.  Yields each batch's ids and result."""
    total = queryset.count()
    bar = sys.stdout.isatty() and not options["no_progress"]
    progress = tqdm(total=total, unit="row", desc=command, disable=not bar, leave=True)
    done = 0
    try:
        for ids in id_batches(queryset, options["batch_size"]):
            if options["dry_run"]:
                with transaction.atomic():
                    result = process(ids)
                    transaction.set_rollback(True)
            else:
                result = process(ids)
            done += len(ids)
            if bar:
                progress.update(len(ids))
            else:
                logger.info("%s: %s of %s row(s): %s", command, done, total, describe(result))
            yield ids, result
    except KeyboardInterrupt:
        # Raised here while a batch is read or processed (the batch under way is one
        # transaction, rolled back): what was kept, and what to do.
        kept = "nothing was written" if options["dry_run"] else "the batch under way was rolled back"
        raise CommandError(
            f"Interrupted: {command} stopped after {done} of {total} row(s), in whole batches ({kept}); "
            "run the same command again to go on."
        ) from None
    finally:
        progress.close()
