"""One entry point imports a file and runs the stages after it, in order;
the admin, the command and the demo all go through it."""

from __future__ import annotations

import io
import subprocess
import sys
from io import StringIO
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.test import Client, override_settings
from django.urls import reverse

from campaigns import admin_import, audience, demo, dry_run
from campaigns.audience import campaign_import_file, report_lines
from campaigns.enrichment.base import EnrichmentError, EnrichmentQuery, EnrichmentResult
from campaigns.management.commands import import_recipients
from campaigns.models import CampaignRecipient
from campaigns.tests.factories import BlocklistEntryFactory, CampaignFactory
from common.fsm import Actor

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).parent / "data"
ACTOR = Actor("test")
Status = CampaignRecipient.Status
HEADER = "first_name,last_name,address1,city,state,zip,country,email\n"
# Ada has an address; John has none and the local sample finds one (the demo
# relies on the same answer); Nomatch is never found.
ROWS = (
    "Ada,Lovelace,12 Analytical Way,Springfield,IL,62701,US,ada@example.com\n"
    "John,Backus,,,,,US,john.backus@example.com\n"
    "Nomatch,Person,,,,,US,nomatch.person@example.com\n"
)


def csv_file(text: str = HEADER + ROWS) -> io.BytesIO:
    return io.BytesIO(text.encode())


def spy_stages(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record, in order, each stage the entry point calls (the real ones still run)."""
    calls: list[str] = []
    for name, label in (
        ("recipients_import_csv", "sync"),
        ("campaign_qualify", "qualify"),
        ("campaign_enrich", "enrich"),
    ):
        real = getattr(audience, name)

        def spy(*args: Any, _real: Any = real, _label: str = label, **kwargs: Any) -> Any:
            calls.append(_label)
            return _real(*args, **kwargs)

        monkeypatch.setattr(audience, name, spy)
    return calls


def test_it_syncs_qualifies_enriches_and_qualifies_again_in_that_order(monkeypatch: pytest.MonkeyPatch) -> None:
    campaign = CampaignFactory(address_enrichment=True)
    calls = spy_stages(monkeypatch)
    campaign_import_file(campaign=campaign, file=csv_file(), actor=ACTOR)
    # Enrichment runs batches until one claims nothing, then the enriched rows are qualified.
    assert calls == ["sync", "qualify", "enrich", "enrich", "qualify"]


def test_without_enrichment_or_qualification_the_later_stages_do_not_run(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = spy_stages(monkeypatch)
    campaign_import_file(campaign=CampaignFactory(address_enrichment=False), file=csv_file(), actor=ACTOR)
    assert calls == ["sync", "qualify"]
    calls.clear()
    campaign_import_file(campaign=CampaignFactory(address_enrichment=True), file=csv_file(), actor=ACTOR, qualify=False)
    assert calls == ["sync"]


def test_an_enriched_recipient_is_qualified_like_everyone_else() -> None:
    campaign = CampaignFactory(address_enrichment=True)
    report = campaign_import_file(campaign=campaign, file=csv_file(), actor=ACTOR, source="people.csv")
    john = campaign.recipients.get(first_name="John")
    assert john.address1
    assert john.status == Status.PROOFING_STAGED
    path = list(john.transitions.order_by("created", "id").values_list("to_status", flat=True))
    assert path == [
        Status.PENDING,
        Status.ADDRESS_ENRICHABLE,
        Status.ADDRESS_ENRICHING,
        Status.PENDING,
        Status.PROOFING_STAGED,
    ]
    nobody = campaign.recipients.get(first_name="Nomatch")
    assert (nobody.status, nobody.skip_reason) == (Status.SKIPPED, "EnrichmentFailed")
    assert report.qualification == {"AddressEnrichable": 2, "ProofingStaged": 2}
    assert report.enrichment == {"Pending": 1, "Skipped:EnrichmentFailed": 1}
    campaign.refresh_from_db()
    assert campaign.import_report["enrichment"] == {"Pending": 1, "Skipped:EnrichmentFailed": 1}
    assert campaign.import_report["qualification"] == report.qualification
    assert "  address lookups: Pending 1, Skipped:EnrichmentFailed 1" in report_lines(campaign.import_report)


def test_an_enriched_address_on_the_blocklist_is_blacklisted_by_the_second_pass() -> None:
    campaign = CampaignFactory(address_enrichment=True)
    first = CampaignFactory(address_enrichment=True)
    campaign_import_file(campaign=first, file=csv_file(), actor=ACTOR)
    found = first.recipients.get(first_name="John")
    BlocklistEntryFactory(
        organization=campaign.organization, address1=found.address1, zip=found.zip, country=found.country
    )
    campaign_import_file(campaign=campaign, file=csv_file(), actor=ACTOR)
    assert campaign.recipients.get(first_name="John").status == Status.BLACKLISTED


def test_lookups_asking_for_a_retry_end_the_run_instead_of_looping(monkeypatch: pytest.MonkeyPatch) -> None:
    class Busy:
        name = "busy"
        timeout = 0.0

        def lookup(self, query: EnrichmentQuery) -> EnrichmentResult:
            raise EnrichmentError("429 slow down")

    monkeypatch.setattr("campaigns.enrichment.service.get_enrichment_client", Busy)
    campaign = CampaignFactory(address_enrichment=True)
    report = campaign_import_file(campaign=campaign, file=csv_file(), actor=ACTOR)
    assert report.enrichment == {"retry_later": 2}
    assert campaign.recipients.filter(status=Status.ADDRESS_ENRICHING).count() == 2


@override_settings(ENRICHMENT={"backend": "faraday", "api_key": "", "target_id": ""})
def test_an_enrichment_configuration_error_keeps_the_import_and_says_why() -> None:
    campaign = CampaignFactory(address_enrichment=True)
    report = campaign_import_file(campaign=campaign, file=csv_file(), actor=ACTOR)
    assert report.status == "complete"
    assert "FARADAY_API_KEY" in report.enrichment["stopped"]
    assert campaign.recipients.filter(status=Status.ADDRESS_ENRICHABLE).count() == 2
    campaign.refresh_from_db()
    assert any(line.startswith("  address lookups stopped: ") for line in report_lines(campaign.import_report))


# --- the three callers --------------------------------------------------------------


def test_the_callers_hold_the_entry_point_itself() -> None:
    for module in (admin_import, import_recipients, demo):
        assert module.campaign_import_file is audience.campaign_import_file, module.__name__


def test_the_admin_upload_goes_through_the_entry_point(admin_client: Client) -> None:
    campaign = CampaignFactory()
    upload = SimpleUploadedFile("basic.csv", (DATA / "basic.csv").read_bytes(), content_type="text/csv")
    with mock.patch.object(admin_import, "campaign_import_file", wraps=campaign_import_file) as entry:
        response = admin_client.post(
            reverse("admin:campaigns_campaign_import", args=[campaign.pk]), {"file": upload, "qualify": "on"}
        )
    assert response.status_code == 302
    entry.assert_called_once()
    assert entry.call_args.kwargs["campaign"] == campaign
    assert entry.call_args.kwargs["qualify"] is True


def test_the_command_goes_through_the_entry_point() -> None:
    campaign = CampaignFactory()
    with mock.patch.object(import_recipients, "campaign_import_file", wraps=campaign_import_file) as entry:
        call_command("import_recipients", str(campaign.pk), str(DATA / "basic.csv"), "--no-progress", stdout=StringIO())
    entry.assert_called_once()
    assert entry.call_args.kwargs["campaign"] == campaign
    assert entry.call_args.kwargs["qualify"] is True


def test_the_demo_goes_through_the_entry_point() -> None:
    with mock.patch.object(demo, "campaign_import_file", wraps=campaign_import_file) as entry:
        call_command("demo", "--password", "pw", stdout=StringIO())
    # Both demo audiences (the billable org's and the unbillable one's).
    names = [call.kwargs["campaign"].name for call in entry.call_args_list]
    assert names == [demo.DEMO_CAMPAIGN, demo.UNBILLABLE_CAMPAIGN]


def test_the_dry_run_runs_the_same_stages_without_the_lookups(monkeypatch: pytest.MonkeyPatch) -> None:
    campaign = CampaignFactory(address_enrichment=True)
    calls = spy_stages(monkeypatch)
    with mock.patch.object(dry_run, "campaign_qualify_and_enrich", wraps=audience.campaign_qualify_and_enrich) as s:
        result = dry_run.recipients_dry_run_csv(campaign=campaign, stream=csv_file(), actor=ACTOR)
    assert s.call_args.kwargs["enrich"] is False
    assert calls == ["qualify"]
    assert result.totals["Address enrichment"] == 2
    assert campaign.recipients.count() == 0


def test_the_admin_does_not_import_a_management_command() -> None:
    """Report helpers live beside the entry point, not in a command module."""
    code = (
        "import sys, django; django.setup(); import campaigns.admin_import; "
        "print(sorted(m for m in sys.modules if '.management.commands.' in m and m.startswith('campaigns')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={"DJANGO_SETTINGS_MODULE": "config.test_settings", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.strip().splitlines()[-1] == "[]"
