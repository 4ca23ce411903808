from __future__ import annotations

import csv
import io
from decimal import Decimal
from pathlib import Path

import pytest

from campaigns.dry_run import (
    ALREADY,
    HOLDOUT,
    STAGED,
    DryRunResult,
    csv_safe,
    dry_run_text,
    dry_run_write_csv,
    recipients_dry_run,
    recipients_dry_run_csv,
)
from campaigns.models import CampaignRecipient, RecipientTransition
from campaigns.sync import recipients_sync
from campaigns.tests.factories import BlocklistEntryFactory, CampaignFactory, OrganizationFactory
from common.fsm import Actor

pytestmark = pytest.mark.django_db
DATA = Path(__file__).parent / "data"
ACTOR = Actor("test")


def person(n: int, **overrides: object) -> dict[str, object]:
    return {"first_name": f"Pat{n}", "last_name": "Doe", "address1": f"{n} Main St", "zip": "62701",
            "country": "US", "_line": n + 1, **overrides}  # fmt: skip


def messages(result: DryRunResult) -> list[str]:
    return [e.message for e in result.lines]


def test_it_explains_each_row_in_plain_words_and_writes_nothing() -> None:
    org = OrganizationFactory(recipient_cap=2)
    campaign = CampaignFactory(organization=org, holdout_percent=Decimal("0"))
    BlocklistEntryFactory(organization=org, address1="4 Main Street", zip="62701", country="US")
    rows = [
        person(1),
        person(2, zip=""),
        person(3, country="Narnia"),
        person(4),
        person(5),
        person(6),
        person(1, _line=8),
    ]
    before = (CampaignRecipient.objects.count(), RecipientTransition.objects.count())

    result = recipients_dry_run(campaign=campaign, rows=rows, actor=ACTOR)

    assert messages(result) == [
        "Will be staged for printer sandbox",
        "Skipped: ZIP / postal code is empty",
        "Skipped: Country 'Narnia' is not a recognised country",
        "Blacklisted: the address or email is on the organization's blocklist",
        "Will be staged for printer sandbox",
        "Skipped: the organization's cap of 2 recipients per campaign is reached",
        "Duplicate in file: the same person appears on an earlier line (line 2)",
    ]
    assert result.ordered_totals() == [(STAGED, 2), ("Skipped", 3), ("Blacklisted", 1), ("Duplicate in file", 1)]
    assert result.skip_reasons == {"International": 2, "CapExceeded": 1}
    assert (CampaignRecipient.objects.count(), RecipientTransition.objects.count()) == before
    campaign.refresh_from_db()
    assert campaign.import_report == {}


def test_it_names_the_holdout_share_and_enrichment() -> None:
    campaign = CampaignFactory(holdout_percent=Decimal("100.00"), address_enrichment=True)
    result = recipients_dry_run(campaign=campaign, rows=[person(1), person(2, address1="")], actor=ACTOR)
    assert messages(result) == [
        "Holdout: 100 % control group",
        "Address enrichment: the street address is empty, the address will be looked up",
    ]
    assert result.totals[HOLDOUT] == 1


def test_it_reports_rows_already_in_the_campaign_with_their_status() -> None:
    campaign = CampaignFactory()
    recipients_sync(campaign=campaign, rows=[person(1)], actor=ACTOR)
    result = recipients_dry_run(campaign=campaign, rows=[person(1)], actor=ACTOR)
    assert result.lines[0].outcome == ALREADY
    assert result.lines[0].message == "Already imported: in the campaign as Pending; left as is"
    assert campaign.recipients.get().status == CampaignRecipient.Status.PENDING


def test_a_csv_dry_run_lists_unparseable_lines_in_order() -> None:
    campaign = CampaignFactory()
    with (DATA / "latin1_bytes.csv").open("rb") as f:
        result = recipients_dry_run_csv(campaign=campaign, stream=f, actor=ACTOR)
    assert [(e.line, e.outcome) for e in result.lines] == [(2, STAGED), (3, "Unparseable line"), (4, STAGED)]
    assert campaign.recipients.count() == 0
    text = dry_run_text(result)
    assert text[0] == "line      2  Ada Lovelace                    Will be staged for printer sandbox"
    assert text[-2:] == ["  Will be staged       2", "  Unparseable line     1"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [("=cmd", "'=cmd"), ("+1", "'+1"), ("-2", "'-2"), ("@SUM(A1)", "'@SUM(A1)"), ("\tx", "'\tx"), ("Ada", "Ada")],
)
def test_csv_export_escapes_formula_like_cells(value: str, expected: str) -> None:
    assert csv_safe(value) == expected


def test_the_exported_csv_keeps_formula_cells_as_text() -> None:
    campaign = CampaignFactory()
    with (DATA / "formula_cells.csv").open("rb") as f:
        result = recipients_dry_run_csv(campaign=campaign, stream=f, actor=ACTOR)
    out = io.StringIO()
    dry_run_write_csv(result, out)
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    assert rows[0] == ["line", "name", "outcome", "skip_reason", "message"]
    assert rows[1][1] == "'=cmd|' /C calc'!A0 Hacker"
    assert rows[2][1] == "'+Plus -Minus"
