"""PostgreSQL-only import paths: COPY instead of a statement per row, and the
planner's statistics refreshed after a large import (skipped on SQLite)."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from campaigns import sync
from campaigns.models import RecipientTransition
from campaigns.sync import recipients_sync
from campaigns.tests.factories import CampaignFactory
from common.fsm import Actor

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL only"),
]


def person(n: int) -> dict[str, Any]:
    return {"first_name": f"Pat{n}", "address1": f"{n} Main St", "city": "Springfield", "zip": "62701", "country": "US"}


def test_rows_go_in_by_copy_never_by_a_statement_per_row(monkeypatch: pytest.MonkeyPatch) -> None:
    from django.db.backends.utils import CursorWrapper

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("executemany sends one statement per row")

    monkeypatch.setattr(CursorWrapper, "executemany", refuse)
    campaign = CampaignFactory()
    report = recipients_sync(campaign=campaign, rows=[person(n) for n in range(5)], actor=Actor("test"), batch_size=2)
    assert report.created == 5
    ids = set(campaign.recipients.values_list("id", flat=True))
    # The ids drawn for the COPY are the rows' ids: the history points at them.
    assert set(RecipientTransition.objects.filter(from_status="").values_list("recipient_id", flat=True)) == ids


def test_a_large_import_refreshes_the_planners_statistics(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sync, "ANALYZE_AFTER", 3)

    def analyzes(rows: int) -> int:
        with CaptureQueriesContext(connection) as queries:
            recipients_sync(campaign=CampaignFactory(), rows=[person(n) for n in range(rows)], actor=Actor("test"))
        return sum(q["sql"].startswith("ANALYZE") for q in queries.captured_queries)

    assert analyzes(2) == 0  # a small import leaves it to autovacuum
    assert analyzes(3) == 1
