"""Re-validation of values the import had to alter, and its transaction (issue 7, item 1).

A failed row keeps a copy of its fields that fits the columns (cut to the
length, a NUL written out as text); re-validating that copy unchanged must fail
again until a person edits the field.
"""

from __future__ import annotations

import threading
from typing import Any, cast

import pytest
from django.db import connections

from campaigns import revalidation
from campaigns.models import Campaign, CampaignRecipient, RecipientTransition
from campaigns.qualification import campaign_qualify
from campaigns.recipient_json import ALTERED_FIELDS, SOURCE_ROW, VALIDATION_ERRORS
from campaigns.revalidation import recipients_revalidate
from campaigns.services import recipients_record_created
from campaigns.sync import recipients_sync
from campaigns.tests.factories import CampaignFactory, CampaignRecipientFactory
from campaigns.validation import recipient_validate
from common.fsm import Actor

pytestmark = pytest.mark.django_db
S = CampaignRecipient.Status
ACTOR = Actor("test")


def row(**overrides: Any) -> dict[str, Any]:
    base = {"first_name": "Ada", "address1": "1 Main St", "city": "Springfield", "state": "IL", "zip": "62701"}
    return {**base, "country": "US", **overrides}


def imported(campaign: Campaign, raw: dict[str, Any]) -> CampaignRecipient:
    """The recipient the import creates from ``raw``: validated data, status,
    skip reason and ``row.json`` as the json (the sync's contract)."""
    checked = recipient_validate(raw)
    r = CampaignRecipient.objects.create(
        campaign=campaign,
        natural_key=checked.natural_key,
        status=S.SKIPPED if checked.skip_reason else S.PENDING,
        skip_reason=checked.skip_reason,
        json=checked.json,
        **checked.data,
    )
    recipients_record_created(recipients=[r], actor=ACTOR)
    return r


def revalidate(*recipients: CampaignRecipient) -> dict[str, int]:
    outcome = recipients_revalidate(
        queryset=CampaignRecipient.objects.filter(pk__in=[r.pk for r in recipients]), actor=ACTOR
    )
    for r in recipients:
        r.refresh_from_db()
    return dict(outcome)


@pytest.fixture
def campaign() -> Campaign:
    return cast("Campaign", CampaignFactory(holdout_percent=0))


def test_a_cut_address1_stays_skipped_until_edited(campaign: Campaign) -> None:
    r = imported(campaign, row(address1="9" * 250))
    assert (r.status, len(r.address1), r.json[ALTERED_FIELDS]) == (S.SKIPPED, 200, ["address1"])

    assert revalidate(r) == {"Skipped": 1}
    assert (r.status, r.skip_reason) == (S.SKIPPED, "International")
    assert r.json[VALIDATION_ERRORS] == [
        {"field": "address1", "message": "address1 was cut to 200 characters on import: edit it"}
    ]
    assert r.json[ALTERED_FIELDS] == ["address1"]
    assert r.json[SOURCE_ROW]["address1"] == "9" * 250
    # Running it again changes nothing: the copy is still the cut one.
    assert revalidate(r) == {"Skipped": 1}
    assert r.json[VALIDATION_ERRORS][0]["message"].startswith("address1 was cut")


def test_a_city_with_a_nul_stays_skipped_until_edited(campaign: Campaign) -> None:
    r = imported(campaign, row(city="Spring\x00field"))
    assert (r.status, r.city) == (S.SKIPPED, "Spring\\x00field")
    assert revalidate(r) == {"Skipped": 1}
    assert r.skip_reason == "International"
    assert r.json[VALIDATION_ERRORS] == [
        {
            "field": "city",
            "message": "city held a NUL byte or an invalid character, written out as text on import: edit it",
        }
    ]


def test_through_the_import_an_unedited_row_stays_skipped_and_an_edited_one_is_staged(campaign: Campaign) -> None:
    rows = [row(address1="9" * 250), row(first_name="Bo", city="Spring\x00field")]
    recipients_sync(campaign=campaign, rows=rows, actor=ACTOR)
    long, nul = campaign.recipients.order_by("id")
    assert (long.json[ALTERED_FIELDS], nul.json[ALTERED_FIELDS]) == (["address1"], ["city"])
    assert revalidate(long, nul) == {"Skipped": 2}
    CampaignRecipient.objects.filter(pk=nul.pk).update(city="Springfield")
    assert revalidate(long, nul) == {"Skipped": 1, "ProofingStaged": 1}
    assert (long.status, nul.status) == (S.SKIPPED, S.PROOFING_STAGED)


def test_an_edited_field_is_checked_normally_and_the_row_is_staged(campaign: Campaign) -> None:
    r = imported(campaign, row(address1="9" * 250, city="Spring\x00field"))
    CampaignRecipient.objects.filter(pk=r.pk).update(address1="12 Analytical Way", city=" Springfield ")
    assert revalidate(r) == {"ProofingStaged": 1}
    assert (r.status, r.skip_reason, r.city) == (S.PROOFING_STAGED, "", "Springfield")
    assert VALIDATION_ERRORS not in r.json
    assert ALTERED_FIELDS not in r.json
    assert r.json[SOURCE_ROW]["address1"] == "9" * 250  # what was received is history, it stays


def test_only_the_fields_still_altered_keep_their_mark(campaign: Campaign) -> None:
    r = imported(campaign, row(address1="9" * 250, city="Spring\x00field"))
    CampaignRecipient.objects.filter(pk=r.pk).update(address1="12 Analytical Way")
    assert revalidate(r) == {"Skipped": 1}
    assert r.json[ALTERED_FIELDS] == ["city"]
    assert [e["field"] for e in r.json[VALIDATION_ERRORS]] == ["city"]


def test_an_edited_field_that_is_still_wrong_fails_with_the_usual_words(campaign: Campaign) -> None:
    r = imported(campaign, row(address1="9" * 250))
    CampaignRecipient.objects.filter(pk=r.pk).update(address1="")
    assert revalidate(r) == {"Skipped": 1}
    assert r.skip_reason == "NoAddress"
    assert r.json[VALIDATION_ERRORS] == [{"field": "address1", "message": "address1 is empty"}]
    assert ALTERED_FIELDS not in r.json


def test_a_value_that_was_not_text_stays_skipped_until_edited(campaign: Campaign) -> None:
    r = imported(campaign, row(address1=["1 Main St"]))
    assert r.address1 == "['1 Main St']"
    assert revalidate(r) == {"Skipped": 1}
    assert r.json[VALIDATION_ERRORS][0]["message"] == (
        "address1 was not text and was stored as text on import: edit it"
    )


def test_a_data_fix_elsewhere_does_not_excuse_an_altered_field(campaign: Campaign) -> None:
    r = imported(campaign, row(first_name="A" * 201, zip=""))
    CampaignRecipient.objects.filter(pk=r.pk).update(zip="62701")
    assert revalidate(r) == {"Skipped": 1}
    assert r.skip_reason == "NoAddress"  # only the name fails now
    assert r.json[VALIDATION_ERRORS] == [
        {"field": "first_name", "message": "first_name was cut to 200 characters on import: edit it"}
    ]


def test_it_qualifies_only_the_selected_rows_not_the_campaigns_other_pending_rows(campaign: Campaign) -> None:
    waiting = CampaignRecipientFactory(campaign=campaign, status=S.PENDING)
    r = imported(campaign, row(zip=""))
    CampaignRecipient.objects.filter(pk=r.pk).update(zip="62701")
    assert revalidate(r) == {"ProofingStaged": 1}
    waiting.refresh_from_db()
    assert waiting.status == S.PENDING
    assert not waiting.transitions.exists()


def test_an_error_in_the_recheck_leaves_the_rows_where_they_were(
    campaign: Campaign, monkeypatch: pytest.MonkeyPatch
) -> None:
    fixed = imported(campaign, row(zip=""))
    CampaignRecipient.objects.filter(pk=fixed.pk).update(zip="62701")
    broken = imported(campaign, row(first_name="Bo", zip=""))
    history = RecipientTransition.objects.count()
    calls: list[str] = []

    def recheck_then_fail(data: dict[str, str], **kwargs: Any) -> Any:
        calls.append(data["first_name"])
        if len(calls) == 2:
            raise RuntimeError("the re-check broke")
        return recipient_recheck(data, **kwargs)

    recipient_recheck = revalidation.recipient_recheck
    monkeypatch.setattr(revalidation, "recipient_recheck", recheck_then_fail)
    with pytest.raises(RuntimeError, match="re-check broke"):
        revalidate(fixed, broken)
    for r in (fixed, broken):
        r.refresh_from_db()
    assert [(r.status, r.skip_reason) for r in (fixed, broken)] == [(S.SKIPPED, "International")] * 2
    assert fixed.json[VALIDATION_ERRORS] == [{"field": "zip", "message": "zip is empty"}]
    assert RecipientTransition.objects.count() == history


def test_an_error_in_the_requalification_leaves_the_rows_where_they_were(
    campaign: Campaign, monkeypatch: pytest.MonkeyPatch
) -> None:
    r = imported(campaign, row(zip=""))
    CampaignRecipient.objects.filter(pk=r.pk).update(zip="62701")

    def broken(**kwargs: Any) -> None:
        raise RuntimeError("qualification broke")

    monkeypatch.setattr(revalidation, "campaign_qualify", broken)
    with pytest.raises(RuntimeError):
        revalidate(r)
    r.refresh_from_db()
    assert (r.status, r.skip_reason) == (S.SKIPPED, "International")


@pytest.mark.django_db(transaction=True)
def test_a_concurrent_qualification_never_sees_the_rows_before_their_recheck(monkeypatch: pytest.MonkeyPatch) -> None:
    campaign = CampaignFactory(holdout_percent=0)
    r = imported(campaign, row(zip=""))  # still wrong: must end Skipped again
    seen: list[dict[str, int]] = []
    recipient_recheck = revalidation.recipient_recheck

    def qualify_meanwhile(data: dict[str, str], **kwargs: Any) -> Any:
        # Another worker qualifies the campaign while the row is "Pending"
        # inside the re-validation's transaction.
        def other_worker() -> None:
            try:
                seen.append(campaign_qualify(campaign=Campaign.objects.get(pk=campaign.pk), actor=ACTOR).as_dict())
            finally:
                connections.close_all()

        worker = threading.Thread(target=other_worker)
        worker.start()
        worker.join(timeout=30)
        assert not worker.is_alive()
        return recipient_recheck(data, **kwargs)

    monkeypatch.setattr(revalidation, "recipient_recheck", qualify_meanwhile)
    assert revalidate(r) == {"Skipped": 1}
    assert seen == [{}]
    assert not r.transitions.filter(to_status=S.PROOFING_STAGED).exists()
