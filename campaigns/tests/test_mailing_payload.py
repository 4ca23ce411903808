"""What a printer is sent for one recipient (``campaigns/mailing/payload.py``):
the address block, the saved request, and the request rebuilt from it for
every attempt.  What is wrong here is printed and mailed: a 6x9 campaign
sent as 4x6, a company lost from the address, a name with stray spaces."""

from __future__ import annotations

import pytest

from campaigns.mailing.payload import recipient_address, submission_payload, submit_request
from campaigns.models import Campaign
from campaigns.proofing.public import proof_public_url
from campaigns.tests.factories import CampaignFactory, CampaignRecipientFactory
from printers.base import Address, SubmitRequest

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("first", "last", "company", "name", "company_line"),
    [
        ("  Ada ", " Lovelace ", "Analytical Engines Ltd", "Ada Lovelace", "Analytical Engines Ltd"),
        ("Ada", "", "", "Ada", ""),
        ("  ", "Lovelace", "", "Lovelace", ""),  # a blank first name adds no space
        ("   ", "", "Analytical Engines Ltd", "Analytical Engines Ltd", ""),  # no name: the company is the addressee
    ],
)
def test_the_address_block_names_the_person_or_else_the_company(first, last, company, name, company_line):
    r = CampaignRecipientFactory.build(first_name=first, last_name=last, company=company)
    address = recipient_address(r)
    assert (address.name, address.company) == (name, company_line)


def test_the_address_block_carries_every_line_and_defaults_the_country_to_the_us():
    lines = {
        "address1": "12 St James's Square",
        "address2": "Flat 3",
        "city": "Toronto",
        "state": "ON",
        "zip": "M5V 2T6",
        "country": "CA",
    }
    r = CampaignRecipientFactory.build(first_name="Ada", last_name="Lovelace", company="", **lines)
    assert recipient_address(r) == Address(name="Ada Lovelace", company="", **lines)
    r.country = ""
    assert recipient_address(r).country == "US"


TO = {
    "name": "Ada Lovelace",
    "company": "",
    "address1": "1 Main St",
    "address2": "",
    "city": "Springfield",
    "state": "IL",
    "zip": "62701",
    "country": "US",
}


def test_the_saved_request_is_the_whole_request_in_plain_json(monkeypatch):
    monkeypatch.setattr("django.core.signing.time.time", lambda: 1_800_000_000.0)  # one timestamp in both links
    campaign = CampaignFactory(size=Campaign.Size.S6X9)
    r = CampaignRecipientFactory(
        campaign=campaign,
        first_name="Ada",
        last_name="Lovelace",
        company="Analytical Engines Ltd",
        **{line: value for line, value in TO.items() if line not in ("name", "company")},
        proof_url=f"proofs/{campaign.pk}/1-front.png",
        proof_back_url=f"proofs/{campaign.pk}/1-back.png",
        submission_gen=2,
    )
    assert submission_payload(campaign, r, "pc:7:00000001:2") == {
        "reference": "pc:7:00000001:2",
        "to": {**TO, "company": "Analytical Engines Ltd"},  # a company beside a name is kept
        "front": proof_public_url(f"proofs/{campaign.pk}/1-front.png"),
        "back": proof_public_url(f"proofs/{campaign.pk}/1-back.png"),
        "size": "6x9",  # the campaign's size, not the default
        "metadata": {"recipient_id": str(r.pk), "campaign_id": str(campaign.pk), "submission_gen": "2"},
    }


def test_every_attempt_sends_the_request_as_it_was_saved():
    saved = {
        "reference": "pc:7:00000001:0-as-saved",
        "to": TO,
        "front": "https://example.test/p/front",
        "back": "https://example.test/p/back",
        "size": "6x11",
        "metadata": {"recipient_id": "1", "campaign_id": "7", "submission_gen": "0"},
    }
    assert submit_request(saved, "pc:7:00000001:0") == SubmitRequest(
        reference="pc:7:00000001:0-as-saved",
        idempotency_key="pc:7:00000001:0",
        to=Address(**TO),
        front="https://example.test/p/front",
        back="https://example.test/p/back",
        size="6x11",
        metadata={"recipient_id": "1", "campaign_id": "7", "submission_gen": "0"},
    )


def test_a_request_saved_without_its_optional_fields_gets_the_defaults():
    """A request saved by an older version, or cut down by hand: the key is the
    reference, 4x6 the size, and no image links (the printer refuses it: a
    permanent error ops can see, never a guess)."""
    request = submit_request({"to": TO}, "pc:7:00000001:0")
    assert (request.reference, request.size, request.front, request.back, dict(request.metadata)) == (
        "pc:7:00000001:0",
        "4x6",
        "",
        "",
        {},
    )
