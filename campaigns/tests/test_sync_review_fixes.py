"""Regression tests from the recipient-sync review: each failed before its fix."""

from __future__ import annotations

import datetime
import io
from http import HTTPStatus
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from campaigns.enrichment.base import EnrichmentQuery, EnrichmentResult
from campaigns.enrichment.service import LEASE, campaign_enrich
from campaigns.importing import recipients_import_csv
from campaigns.models import CampaignRecipient
from campaigns.qualification import campaign_qualify
from campaigns.sync import recipients_sync
from campaigns.tests.factories import CampaignFactory, CampaignRecipientFactory
from campaigns.validation import recipient_validate
from common.fsm import Actor

pytestmark = pytest.mark.django_db
ACTOR = Actor("test")
Status = CampaignRecipient.Status
HEADER = b"first_name,address1,zip,country,note\n"


def valid(**extra: object) -> dict[str, object]:
    return {"first_name": "Ann", "address1": "1 Main St", "zip": "12345", "country": "US", **extra}


# --- PostgreSQL refuses NUL in text and jsonb (SQLite stored it silently) ---------------


def test_it_skips_a_csv_row_holding_a_nul_byte_and_keeps_the_rest_of_the_file() -> None:
    campaign = CampaignFactory()
    data = HEADER + b"An\x00n,1 Main St,12345,US,x\x00y\nBob,2 Main St,12345,US,ok\n"
    report = recipients_import_csv(campaign=campaign, stream=io.BytesIO(data), actor=ACTOR)
    assert report.status == "complete"
    assert report.created == 2
    bad = campaign.recipients.get(status=Status.SKIPPED)
    assert bad.skip_reason == CampaignRecipient.SkipReason.NO_ADDRESS
    assert "\x00" not in bad.first_name
    assert bad.json["source_row"]["first_name"] == "An\\x00n"
    assert bad.json["extra"] == {"note": "x\\x00y"}
    assert "first_name contains a NUL byte" in bad.json["validation_errors"][0]["message"]
    assert campaign.recipients.get(status=Status.PENDING).first_name == "Bob"


def test_an_integration_row_with_nul_or_a_lone_surrogate_is_skipped_not_a_failed_import() -> None:
    campaign = CampaignFactory()
    rows = [valid(country="U\x00S"), valid(first_name="B\udc80b"), valid(first_name="Cy", crm_note="a\x00")]
    report = recipients_sync(campaign=campaign, rows=rows, actor=ACTOR)
    assert report.status == "complete"
    assert report.by_skip_reason == {"International": 1, "NoAddress": 1}
    assert campaign.recipients.get(first_name="Cy").json["extra"] == {"crm_note": "a\\x00"}
    surrogate = campaign.recipients.get(skip_reason="NoAddress")
    assert surrogate.json["source_row"]["first_name"] == "B\\udc80b"


def test_an_extra_that_is_not_a_dict_or_not_json_is_kept_as_text() -> None:
    campaign = CampaignFactory()
    when = datetime.date(2024, 1, 2)
    rows = [valid(extra="vip"), valid(first_name="Bo", extra={"since": when, "tags": ("a", 1)})]
    report = recipients_sync(campaign=campaign, rows=rows, actor=ACTOR)
    assert report.created == 2
    assert campaign.recipients.get(first_name="Ann").json["extra"] == {"extra": "vip"}
    assert campaign.recipients.get(first_name="Bo").json["extra"] == {"since": "2024-01-02", "tags": ["a", 1]}


# --- batch sizes below 1 dropped every row silently ----------------------------------------


def test_a_batch_size_below_one_is_refused_instead_of_importing_nothing(tmp_path: Path) -> None:
    campaign = CampaignFactory()
    with pytest.raises(ValueError, match="batch_size"):
        recipients_sync(campaign=campaign, rows=[valid()], actor=ACTOR, batch_size=0)
    with pytest.raises(ValueError, match="batch_size"):
        campaign_qualify(campaign=campaign, actor=ACTOR, batch_size=0)
    path = tmp_path / "a.csv"
    path.write_bytes(HEADER + b"Ann,1 Main St,12345,US,\n")
    with pytest.raises(CommandError, match="--batch-size must be at least 1"):
        call_command("import_recipients", str(campaign.pk), str(path), "--batch-size", "0", "--no-progress")
    assert not campaign.recipients.exists()


# --- the command's campaign lookup ---------------------------------------------------------


@pytest.mark.parametrize("ref", ["²", "٣", "99999999999999999999999", "nope"])
def test_an_odd_or_unknown_campaign_reference_is_a_command_error(ref: str, tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_bytes(HEADER)
    with pytest.raises(CommandError, match="no such campaign"):
        call_command("import_recipients", ref, str(path), "--no-progress")


def test_a_campaign_named_with_digits_is_found_by_name(tmp_path: Path) -> None:
    campaign = CampaignFactory(name="987654")
    path = tmp_path / "a.csv"
    path.write_bytes(HEADER + b"Ann,1 Main St,12345,US,\n")
    call_command("import_recipients", "987654", str(path), "--no-progress", stdout=io.StringIO())
    assert campaign.recipients.count() == 1


def test_a_directory_instead_of_a_file_is_a_command_error(tmp_path: Path) -> None:
    campaign = CampaignFactory()
    with pytest.raises(CommandError, match="is a folder: give the CSV file inside it"):
        call_command("import_recipients", str(campaign.pk), str(tmp_path), "--no-progress")


# --- admin: a non-numeric id was a ValueError (500) ----------------------------------------


@pytest.mark.parametrize("view", ["import", "import/dry-run"])
@pytest.mark.parametrize("object_id", ["abc", "999999", "1.5"])
def test_the_import_pages_answer_404_for_a_missing_or_malformed_campaign_id(
    admin_client: Client, view: str, object_id: str
) -> None:
    response = admin_client.get(f"/admin/campaigns/campaign/{object_id}/{view}/")
    assert response.status_code == HTTPStatus.NOT_FOUND


# --- validation with enrichment on ----------------------------------------------------------


def test_with_enrichment_on_a_too_long_zip_is_an_error_not_a_silent_cut() -> None:
    row = recipient_validate({"first_name": "Ann", "zip": "1" * 30, "country": "US"}, enrichment=True)
    assert row.skip_reason == CampaignRecipient.SkipReason.INTERNATIONAL
    assert row.errors == [{"field": "zip", "message": "zip is longer than 20 characters"}]
    # Empty address1 and zip are still forgiven: enrichment brings them.
    assert not recipient_validate({"first_name": "Ann", "country": "US"}, enrichment=True).skip_reason


def test_overlong_names_and_countries_are_skipped_not_a_database_error() -> None:
    campaign = CampaignFactory()
    rows = [valid(first_name="A" * 300), valid(first_name="Bo", country="X" * 300)]
    report = recipients_sync(campaign=campaign, rows=rows, actor=ACTOR)
    assert report.by_skip_reason == {"International": 1, "NoAddress": 1}
    long_name = campaign.recipients.get(skip_reason="NoAddress")
    assert long_name.json["source_row"]["first_name"] == "A" * 300


# --- enrichment lease ----------------------------------------------------------------------


class SlowClient:
    """A client whose every lookup may take up to ``timeout`` seconds."""

    name = "slow"
    timeout = 30.0

    def lookup(self, query: EnrichmentQuery) -> EnrichmentResult:
        # Check the lease while "the lookup runs": it must outlast the batch.
        row = CampaignRecipient.objects.get(first_name=query.first_name)
        assert row.lease_until is not None
        self.lease_left = row.lease_until - timezone.now()
        return EnrichmentResult(outcome="no_match")


def test_the_enrichment_lease_outlasts_a_batch_of_lookups_at_the_client_timeout() -> None:
    campaign = CampaignFactory(address_enrichment=True)
    for i in range(40):
        CampaignRecipientFactory(
            campaign=campaign, first_name=f"P{i}", address1="", zip="", status=Status.ADDRESS_ENRICHABLE
        )
    client = SlowClient()
    campaign_enrich(campaign=campaign, actor=ACTOR, batch_size=40, client=client)
    # 40 lookups x 30 s = 20 minutes, more than the default 10-minute lease.
    assert client.lease_left > max(LEASE, datetime.timedelta(minutes=20))
