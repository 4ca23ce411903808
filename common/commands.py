"""What the management commands share for bad input and Ctrl-C: a clear
``CommandError`` (exit code 1, one line, no traceback) instead of a Python
error, and checked before any work is done."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from django.core.management.base import CommandError

from common.models import MAX_ROW_ID


def check_seconds(seconds: float, option: str = "--interval") -> float:
    """A pause or a delay in seconds, so 0 or more (time.sleep refused a
    negative ``--interval`` only after a whole pass had run)."""
    if not seconds >= 0:  # NaN too
        raise CommandError(f"{option} must be 0 or more seconds.")
    return seconds


def check_campaign_ids(ids: Iterable[int] | None) -> list[int]:
    """``--campaign`` ids that all exist, or a CommandError naming the ones
    that do not (an id past the database's integers included: SQLite raised
    OverflowError on it)."""
    from campaigns.models import Campaign

    wanted = sorted(set(ids or ()))
    if not wanted:
        return []
    storable = [i for i in wanted if 0 < i <= MAX_ROW_ID]
    found = set(Campaign.objects.filter(pk__in=storable).values_list("pk", flat=True))
    missing = [i for i in wanted if i not in found]
    if missing:
        raise CommandError(f"No campaign with id {', '.join(map(str, missing))}.")
    return wanted


@contextmanager
def interrupted_says(what: str) -> Iterator[None]:
    """Ctrl-C inside becomes ``Interrupted: <what>`` as a CommandError: the
    user learns what was kept and what to do, not a traceback."""
    try:
        yield
    except KeyboardInterrupt:
        raise CommandError(f"Interrupted: {what}") from None
