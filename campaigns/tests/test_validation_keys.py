"""The natural key, the blocklist key and the validator's guards, each rule pinned
by a test that fails when the rule is dropped (the mutation survivors of issue 7)."""

from __future__ import annotations

from typing import Any

import pytest

from campaigns.enums import CampaignRecipientSkipReason as SkipReason
from campaigns.keys import blocklist_address_key, blocklist_email_key, blocklist_entry_key, natural_key
from campaigns.validation import RecipientDataValidator, recipient_validate

PERSON = {
    "first_name": "Ada",
    "last_name": "Lovelace",
    "address1": "12 Analytical Way",
    "address2": "Flat 1",
    "city": "Springfield",
    "state": "IL",
    "zip": "62701",
    "country": "US",
    "email": "ada@example.com",
}


@pytest.mark.parametrize(
    ("name", "other"),
    [
        ("first_name", "Grace"),
        ("last_name", "Hopper"),
        ("address1", "13 Analytical Way"),
        ("zip", "62702"),
        ("country", "GB"),
        ("country", "Narnia"),  # an unknown country still counts
    ],
)
def test_two_people_differing_in_one_key_field_are_two_recipients(name: str, other: str) -> None:
    assert natural_key(PERSON) != natural_key({**PERSON, name: other})


@pytest.mark.parametrize(("name", "other"), [("address2", "Flat 2"), ("city", "Chicago"), ("email", "x@y.z")])
def test_fields_outside_the_key_do_not_make_a_new_recipient(name: str, other: str) -> None:
    assert natural_key(PERSON) == natural_key({**PERSON, name: other})


def test_key_fields_are_not_interchangeable() -> None:
    swapped = {**PERSON, "first_name": "Lovelace", "last_name": "Ada"}
    assert natural_key(PERSON) != natural_key(swapped)
    assert natural_key({"first_name": "a b", "last_name": ""}) != natural_key({"first_name": "a", "last_name": "b"})


def test_the_natural_key_is_a_sha256_of_the_normalised_parts() -> None:
    assert natural_key({"external_id": " crm-1 "}) == natural_key({"external_id": "crm-1"})
    by_id = natural_key({**PERSON, "external_id": "crm-1"})
    assert by_id == natural_key({"external_id": "crm-1"})
    assert by_id != natural_key(PERSON)
    # The "id" and "addr" spaces never collide: an external id is not a name.
    assert natural_key({"external_id": "Ada"}) != natural_key({"first_name": "Ada"})
    assert natural_key({"country": "usa"}) == natural_key({"country": "US"})
    assert natural_key({"country": "Narnia"}) == natural_key({"country": " NARNIA "})
    assert natural_key({}) == natural_key({"first_name": "", "country": ""})


def test_the_natural_key_is_stable() -> None:
    # A changed key splits every re-import from what the campaign already has
    # (values computed with the code before issue 7: the keys did not move).
    assert natural_key(PERSON) == "e5535134ece957338b883874626e0ceecd7c66cc57dd2f1974c5feac64dc30b2"
    assert natural_key({"external_id": "crm-1"}) == "4224b8f5c2b1f7908351be64928b86b857b6543f64e2c28db124a2f90801d37a"


# --- blocklist keys -------------------------------------------------------------------------


def address_key(**overrides: str) -> str:
    parts = {"address1": "1 Main Street", "zip": "62701", "country": "US", **overrides}
    return blocklist_address_key(**parts)


def test_one_street_in_two_zips_is_two_addresses() -> None:
    assert address_key() != address_key(zip="62702")
    assert address_key(country="GB") != address_key(country="CA")


def test_only_a_us_zip_plus_4_folds_to_five_digits() -> None:
    assert address_key(zip="62701-1234") == address_key(zip="62701") == address_key(zip="627011234")
    assert address_key(zip="62701 1234") == address_key(zip="62701")
    # Other countries' postcodes are whole: one London street is not every SW1A street.
    assert address_key(country="GB", zip="SW1A 1AA") != address_key(country="GB", zip="SW1A 2AA")
    assert address_key(country="CA", zip="K1A 0B1") != address_key(country="CA", zip="K1A 0B2")
    assert address_key(country="GB", zip="SW1A 1AA") == address_key(country="GB", zip="sw1a-1aa")
    # A US zip that is not a ZIP+4 is not cut either.
    assert address_key(zip="627011") != address_key(zip="62701")
    assert address_key(zip="62701-123") != address_key(zip="62701")


def test_an_empty_country_counts_as_us_and_a_full_width_zip_as_ascii() -> None:
    assert address_key(country="") == address_key(country="US") == address_key(country="usa")
    assert address_key(country="", zip="62701-1234") == address_key(zip="62701")
    assert address_key(zip="\uff16\uff12\uff17\uff10\uff11") == address_key()
    assert address_key(country="Narnia") != address_key(country="Atlantis")


def test_street_spellings_match_but_streets_do_not() -> None:
    assert address_key(address1="1 main st.") == address_key()
    assert address_key(address1="1 N. Main Avenue #4") == address_key(address1="1 north main ave 4")
    assert address_key(address1="2 Main Street") != address_key()
    assert address_key(address1="1 Main Road") != address_key()


def test_the_blocklist_keys_are_stable_and_separate() -> None:
    assert address_key() == "68884736c44a64b26cbca976b5013e7425cd9cc5319c9cb51e75666a12e3ee9a"
    assert blocklist_email_key(" Ada@Example.COM ") == blocklist_email_key("ada@example.com")
    assert blocklist_email_key("ada@example.com") != blocklist_email_key("ada@example.org")
    assert blocklist_entry_key(email=" ", address1="1 Main Street", zip="62701", country="US") == address_key()
    assert blocklist_entry_key(email="a@b.c", address1="1 Main Street") == blocklist_email_key("a@b.c")


# --- the validator's guards -------------------------------------------------------------------


def row(**overrides: Any) -> dict[str, Any]:
    return {**PERSON, **overrides}


@pytest.mark.parametrize("bad", ["\x00", "a\x00b", "\ud800", "x\udfff"])
@pytest.mark.parametrize("name", ["first_name", "address1", "city", "email", "external_id"])
def test_a_nul_or_a_lone_surrogate_in_any_field_is_refused(bad: str, name: str) -> None:
    result = recipient_validate(row(**{name: bad}))
    assert {"field": name, "message": f"{name} contains a NUL byte or an invalid character"} in result.errors
    assert result.skip_reason in (SkipReason.NO_ADDRESS, SkipReason.INTERNATIONAL)
    assert "\x00" not in result.data[name]


def test_the_guard_lets_ordinary_text_through() -> None:
    assert RecipientDataValidator.model_validate(row(city="S\u00e3o Paulo")).city == "S\u00e3o Paulo"
    assert recipient_validate(row(city="S\u00e3o Paulo \U0001f3e0")).skip_reason == ""


@pytest.mark.parametrize(
    ("overrides", "reason", "message"),
    [
        ({"zip": "1" * 21}, SkipReason.INTERNATIONAL, "zip is longer than 20 characters"),
        ({"country": ""}, SkipReason.INTERNATIONAL, "country is empty"),
        ({"address1": 12.5j}, SkipReason.INTERNATIONAL, "address1 is not text"),
        ({"first_name": True}, SkipReason.NO_ADDRESS, "first_name is not text"),
        ({"address2": "x" * 201}, SkipReason.INTERNATIONAL, "address2 is longer than 200 characters"),
        ({"email": "x" * 255}, SkipReason.NO_ADDRESS, "email is longer than 254 characters"),
        ({"company": "x" * 201}, SkipReason.NO_ADDRESS, "company is longer than 200 characters"),
        ({"external_id": "x" * 201}, SkipReason.NO_ADDRESS, "external_id is longer than 200 characters"),
    ],
)
def test_each_failure_has_its_words_and_its_reason(overrides: dict[str, Any], reason: str, message: str) -> None:
    result = recipient_validate(row(**overrides))
    assert result.skip_reason == reason
    assert result.errors[0]["message"] == message


def test_a_missing_country_and_an_empty_address1_is_international() -> None:
    # The country decides first: a row for no known country is not mailed at all.
    assert recipient_validate(row(country="", address1="")).skip_reason == SkipReason.INTERNATIONAL
    assert recipient_validate(row(address1="", city="x" * 101)).skip_reason == SkipReason.NO_ADDRESS
    data = row()
    del data["address1"]
    assert recipient_validate(data).errors == [{"field": "address1", "message": "address1 is empty"}]


def test_a_lone_surrogate_still_hashes_to_a_key() -> None:
    # Keys are hashed from what the caller gives; a surrogate must not crash an import.
    assert len(natural_key({"first_name": "B\udc80b"})) == 64
    assert natural_key({"first_name": "B\udc80b"}) != natural_key({"first_name": "B\udc81b"})


def test_the_other_blocklist_keys_are_stable() -> None:
    assert address_key(country="GB", zip="SW1A 1AA") == (
        "1db3ed26e01fbfb33f943b7938f6df32a534ca7b51aa3ccdba26d24b8dce9fe5"
    )
    assert blocklist_email_key("ada@example.com") == (
        "d5f3d349632b23a7a9ad57fcd6a07c58e99bcecf65db7100d8ea7403ec38b8ad"
    )
    assert blocklist_entry_key() == blocklist_address_key(address1="", zip="", country="")


def test_a_valid_row_has_its_natural_key() -> None:
    result = recipient_validate(row())
    assert result.natural_key == natural_key(result.data)
    assert result.data["country"] == "US"


def test_a_row_without_any_name_says_so_even_when_another_field_fails() -> None:
    result = recipient_validate(row(first_name="", last_name=" ", zip=""))
    assert result.errors == [
        {"field": "zip", "message": "zip is empty"},
        {"field": "name", "message": "first_name and last_name are both empty"},
    ]


def test_enrichment_forgives_only_an_empty_address1_and_zip() -> None:
    result = recipient_validate(row(address1="", zip="1" * 21), enrichment=True)
    assert result.errors == [{"field": "zip", "message": "zip is longer than 20 characters"}]
    assert recipient_validate(row(address1="", zip=""), enrichment=True).errors == []
    # With address1 given, an empty zip is still an error.
    assert recipient_validate(row(zip=""), enrichment=True).errors == [{"field": "zip", "message": "zip is empty"}]


def test_a_failed_row_stores_unaltered_countries_and_us_states_as_codes() -> None:
    result = recipient_validate(row(country="usa", state="Illinois", zip=""))
    assert (result.data["country"], result.data["state"]) == ("US", "IL")
    other = recipient_validate(row(country="GB", state="illinois", zip=""))
    assert (other.data["country"], other.data["state"]) == ("GB", "illinois")
    unknown = recipient_validate(row(country="Narnia", state="Illinois"))
    assert (unknown.data["country"], unknown.data["state"]) == ("Narnia", "Illinois")


def test_an_altered_country_or_state_is_kept_as_its_copy_never_normalised() -> None:
    # Cut to the column, these would read as real places: the copy is kept
    # as it is so re-validation can recognise it and refuse it.
    country = "United States" + " " * 90 + "x" * 10
    result = recipient_validate(row(country=country))
    assert result.data["country"] == "United States"
    assert result.json["altered_fields"] == ["country"]
    state = "New York" + " " * 95 + "x"
    result = recipient_validate(row(state=state, zip=""))
    assert result.data["state"] == "New York"
    assert result.json["altered_fields"] == ["state"]


def test_the_source_row_leaves_out_empty_and_missing_fields() -> None:
    result = recipient_validate(row(company="", address2=None, zip=""))
    assert set(result.json["source_row"]) == {
        "first_name",
        "last_name",
        "address1",
        "city",
        "state",
        "country",
        "email",
    }
