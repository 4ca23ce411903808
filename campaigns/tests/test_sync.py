from __future__ import annotations

from typing import Any

import pytest
from django.db import IntegrityError

from campaigns import sync
from campaigns.models import CampaignRecipient, RecipientTransition
from campaigns.sync import recipients_sync
from campaigns.tests.factories import CampaignFactory, CampaignRecipientFactory
from campaigns.validation import natural_key
from common.fsm import Actor

pytestmark = pytest.mark.django_db
ACTOR = Actor("test")
Status = CampaignRecipient.Status


def person(n: int, **overrides: Any) -> dict[str, Any]:
    base = {
        "first_name": f"Pat{n}",
        "last_name": "Doe",
        "address1": f"{n} Main St",
        "city": "Springfield",
        "state": "IL",
        "zip": "62701",
        "country": "US",
    }
    return {**base, **overrides}


def test_it_creates_valid_rows_pending_with_a_creation_history_row() -> None:
    campaign = CampaignFactory()
    report = recipients_sync(campaign=campaign, rows=[person(1), person(2)], actor=ACTOR)
    assert report.created == 2
    assert report.by_status == {"Pending": 2}
    recipients = list(campaign.recipients.order_by("id"))
    assert [r.status for r in recipients] == [Status.PENDING, Status.PENDING]
    assert recipients[0].natural_key == natural_key(person(1))
    history = RecipientTransition.objects.get(recipient=recipients[0])
    assert (history.from_status, history.to_status, history.source) == ("", "Pending", "test")


def test_it_creates_invalid_rows_skipped_with_reason_errors_and_the_source_row() -> None:
    campaign = CampaignFactory()
    long_city = "C" * 150
    recipients_sync(campaign=campaign, rows=[person(1, zip="", city=long_city)], actor=ACTOR)
    r = campaign.recipients.get()
    assert r.status == Status.SKIPPED
    assert r.skip_reason == "International"
    assert {e["message"] for e in r.json["validation_errors"]} == {
        "zip is empty",
        "city is longer than 100 characters",
    }
    assert r.json["source_row"]["city"] == long_city
    assert RecipientTransition.objects.get(recipient=r).payload == {"skip_reason": "International"}


def test_it_skips_rows_with_a_bad_country_as_international() -> None:
    campaign = CampaignFactory()
    recipients_sync(campaign=campaign, rows=[person(1, country="Atlantis")], actor=ACTOR)
    assert campaign.recipients.get().skip_reason == "International"


def test_re_syncing_the_same_rows_creates_nothing_and_counts_them_as_already_present() -> None:
    campaign = CampaignFactory()
    recipients_sync(campaign=campaign, rows=[person(1), person(2)], actor=ACTOR)
    report = recipients_sync(
        campaign=campaign, rows=[person(1), person(2, first_name=" PAT2 "), person(3)], actor=ACTOR
    )
    assert (report.created, report.already_present, report.duplicates_in_file) == (1, 2, 0)
    assert campaign.recipients.count() == 3


def test_duplicates_inside_one_input_are_counted_across_batches() -> None:
    campaign = CampaignFactory()
    rows = [person(1), person(1), person(2), person(1)]
    report = recipients_sync(campaign=campaign, rows=rows, actor=ACTOR, batch_size=2)
    assert (report.created, report.duplicates_in_file, report.already_present) == (2, 2, 0)


def test_the_external_id_is_the_natural_key_when_present() -> None:
    campaign = CampaignFactory()
    recipients_sync(campaign=campaign, rows=[person(1, external_id="crm-7")], actor=ACTOR)
    report = recipients_sync(campaign=campaign, rows=[person(99, external_id="crm-7")], actor=ACTOR)
    assert report.already_present == 1
    assert campaign.recipients.get().address1 == "1 Main St"  # an existing recipient is never changed


def test_the_same_person_may_be_in_two_campaigns() -> None:
    first, second = CampaignFactory(), CampaignFactory()
    recipients_sync(campaign=first, rows=[person(1)], actor=ACTOR)
    assert recipients_sync(campaign=second, rows=[person(1)], actor=ACTOR).created == 1


def test_unknown_keys_are_kept_in_json_extra() -> None:
    campaign = CampaignFactory()
    recipients_sync(campaign=campaign, rows=[person(1, favourite="tea", _line=3)], actor=ACTOR)
    assert campaign.recipients.get().json == {"extra": {"favourite": "tea"}}


def test_the_report_is_saved_on_the_campaign() -> None:
    campaign = CampaignFactory()
    recipients_sync(campaign=campaign, rows=[person(1), person(2, zip="")], actor=ACTOR)
    campaign.refresh_from_db()
    assert campaign.import_report["status"] == "complete"
    assert campaign.import_report["by_status"] == {"Pending": 1, "Skipped": 1}
    assert campaign.import_report["by_skip_reason"] == {"International": 1}


def test_a_failure_midway_still_saves_a_report_and_a_rerun_completes() -> None:
    campaign = CampaignFactory()

    def rows() -> Any:
        yield person(1)
        yield person(2)
        raise RuntimeError("source went away")

    with pytest.raises(RuntimeError):
        recipients_sync(campaign=campaign, rows=rows(), actor=ACTOR, batch_size=1)
    campaign.refresh_from_db()
    assert campaign.import_report["status"] == "failed"
    assert "source went away" in campaign.import_report["errors"][0]
    assert campaign.recipients.count() == 2
    report = recipients_sync(campaign=campaign, rows=[person(1), person(2), person(3)], actor=ACTOR)
    assert (report.created, report.already_present) == (1, 2)


def test_a_dry_run_writes_nothing() -> None:
    campaign = CampaignFactory()
    CampaignRecipientFactory(campaign=campaign, natural_key=natural_key(person(1)))
    before = (CampaignRecipient.objects.count(), RecipientTransition.objects.count())
    report = recipients_sync(
        campaign=campaign, rows=[person(1), person(2), person(3, zip="")], actor=ACTOR, dry_run=True
    )
    assert (report.created, report.already_present) == (2, 1)
    assert (CampaignRecipient.objects.count(), RecipientTransition.objects.count()) == before
    campaign.refresh_from_db()
    assert campaign.import_report == {}


def test_a_country_the_campaign_printer_does_not_mail_to_is_skipped_international() -> None:
    campaign = CampaignFactory(printer="lob")
    recipients_sync(campaign=campaign, rows=[person(1, country="United Kingdom"), person(2)], actor=ACTOR)
    uk = campaign.recipients.get(first_name="Pat1")
    assert (uk.status, uk.skip_reason) == (Status.SKIPPED, "International")
    assert uk.json["validation_errors"] == [{"field": "country", "message": "country GB is not mailed by this printer"}]
    assert campaign.recipients.get(first_name="Pat2").status == Status.PENDING


def test_a_key_conflict_on_insert_rechecks_the_batch_a_few_times_then_fails_with_a_report(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    campaign = CampaignFactory()
    real = sync.recipients_insert
    conflicts = {"left": 1}

    def conflicting(*, campaign: Any, rows: Any) -> None:
        # What a concurrent import of the same keys looks like from here.
        if conflicts["left"]:
            conflicts["left"] -= 1
            raise IntegrityError("UNIQUE constraint failed")
        real(campaign=campaign, rows=rows)

    monkeypatch.setattr(sync, "recipients_insert", conflicting)
    report = recipients_sync(campaign=campaign, rows=[person(1), person(2)], actor=ACTOR)
    assert (report.created, report.status) == (2, "complete")
    assert campaign.recipients.count() == 2

    conflicts["left"] = sync.INSERT_ATTEMPTS
    with pytest.raises(IntegrityError):
        recipients_sync(campaign=campaign, rows=[person(3)], actor=ACTOR)
    campaign.refresh_from_db()
    assert campaign.import_report["status"] == "failed"
    assert campaign.recipients.count() == 2
