"""Two imports into one campaign at the same time: each report stays exact.

A row the other import created is "already present", never a "duplicate in
the file": only this import's own earlier rows make a repeat.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from functools import partial
from typing import Any

import pytest

from campaigns.models import CampaignRecipient, RecipientTransition
from campaigns.sync import ImportReport, recipients_sync
from campaigns.tests.factories import CampaignFactory
from campaigns.tests.test_sync import person as sync_person
from common.fsm import Actor
from common.testing import race


def person(n: int) -> dict[str, Any]:
    # The rows test_sync.py imports, each with an id of its own in the CRM.
    return sync_person(n, external_id=f"crm-{n}")


@pytest.mark.django_db(transaction=True)
def test_rows_another_import_created_meanwhile_are_already_present_not_duplicates() -> None:
    campaign = CampaignFactory()

    def first_file() -> Iterator[dict[str, Any]]:
        # The second import runs, start to end, after this one has started.
        other = recipients_sync(campaign=campaign, rows=[person(n) for n in (2, 3)], actor=Actor("b"))
        assert (other.created, other.duplicates_in_file) == (2, 0)
        yield from (person(n) for n in (1, 2, 3, 1))

    report = recipients_sync(campaign=campaign, rows=first_file(), actor=Actor("a"), batch_size=2)
    assert (report.created, report.already_present, report.duplicates_in_file) == (1, 2, 1)


@pytest.mark.django_db(transaction=True)
def test_two_imports_racing_on_overlapping_rows_report_exact_counts() -> None:
    campaign = CampaignFactory()
    # Each file: 60 distinct people, 20 of them listed twice; the files share 30 people.
    files = {
        "a": [person(n) for n in range(0, 60)] + [person(n) for n in range(0, 20)],
        "b": [person(n) for n in range(30, 90)] + [person(n) for n in range(30, 50)],
    }

    def worker(name: str) -> ImportReport:
        return recipients_sync(campaign=campaign, rows=files[name], actor=Actor(name), batch_size=7)

    reports = dict(zip(files, race([partial(worker, name) for name in files], timeout=60), strict=True))

    assert CampaignRecipient.objects.filter(campaign=campaign).count() == 90
    # Who created each person, from the creation history; each report must
    # match it row by row: a repeat is a duplicate only of this import's row.
    creator = dict(
        RecipientTransition.objects.filter(recipient__campaign=campaign, from_status="").values_list(
            "recipient__external_id", "source"
        )
    )
    for name, rows in files.items():
        expected: Counter[str] = Counter()
        seen: set[str] = set()
        for row in rows:
            mine = creator[row["external_id"]] == name
            first = row["external_id"] not in seen
            seen.add(row["external_id"])
            expected["created" if mine and first else "duplicate" if mine else "already_present"] += 1
        report = reports[name]
        assert (report.created, report.duplicates_in_file, report.already_present) == (
            expected["created"],
            expected["duplicate"],
            expected["already_present"],
        )
    assert reports["a"].created + reports["b"].created == 90
