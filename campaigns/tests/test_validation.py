from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from campaigns.enums import CampaignRecipientSkipReason as SkipReason
from campaigns.keys import blocklist_address_key, blocklist_email_key, blocklist_entry_key, natural_key
from campaigns.validation import RecipientDataValidator, recipient_validate
from common.geo import country_normalize


def row(**overrides: Any) -> dict[str, Any]:
    base = {
        "first_name": "Ada",
        "last_name": "Lovelace",
        "address1": "12 Analytical Way",
        "city": "Springfield",
        "state": "IL",
        "zip": "62701",
        "country": "US",
        "email": "ada@example.com",
    }
    return {**base, **overrides}


def test_it_strips_whitespace_on_every_string_field() -> None:
    model = RecipientDataValidator.model_validate(
        row(first_name="  Ada ", address1="\t12 Analytical Way  ", zip=" 62701 ", email=" a@b.c ")
    )
    assert (model.first_name, model.address1, model.zip, model.email) == ("Ada", "12 Analytical Way", "62701", "a@b.c")


@pytest.mark.parametrize("name", ["address1", "zip", "country"])
def test_it_requires_each_address_field(name: str) -> None:
    with pytest.raises(ValidationError):
        RecipientDataValidator.model_validate(row(**{name: "   "}))
    data = row()
    del data[name]
    with pytest.raises(ValidationError):
        RecipientDataValidator.model_validate(data)


def test_it_accepts_a_last_name_alone_and_a_first_name_alone() -> None:
    assert RecipientDataValidator.model_validate(row(first_name="")).last_name == "Lovelace"
    assert RecipientDataValidator.model_validate(row(last_name=" ")).first_name == "Ada"


def test_it_rejects_a_row_without_any_name() -> None:
    with pytest.raises(ValidationError, match="first_name and last_name are both empty"):
        RecipientDataValidator.model_validate(row(first_name=" ", last_name=None))


@pytest.mark.parametrize("name", ["first_name", "last_name"])
def test_it_rejects_asterisks_in_names(name: str) -> None:
    with pytest.raises(ValidationError, match="asterisk"):
        RecipientDataValidator.model_validate(row(**{name: "Ad*"}))


def test_it_allows_asterisks_outside_names() -> None:
    assert RecipientDataValidator.model_validate(row(address2="Unit *3")).address2 == "Unit *3"


def test_it_normalizes_country_spellings_to_alpha_2() -> None:
    assert [country_normalize(c) for c in ("usa", "United States", "u.s.a.", "gb", "UK", "Narnia", "")] == [
        "US",
        "US",
        "US",
        "GB",
        "GB",
        None,
        None,
    ]
    assert RecipientDataValidator.model_validate(row(country="United Kingdom")).country == "GB"


def test_it_turns_numbers_into_text_so_integrations_can_send_ints() -> None:
    assert RecipientDataValidator.model_validate(row(zip=62701)).zip == "62701"


def test_a_valid_row_has_no_skip_reason() -> None:
    result = recipient_validate(row())
    assert result.skip_reason == ""
    assert result.errors == []
    assert result.data["first_name"] == "Ada"


def test_a_missing_address1_is_skipped_no_address_when_enrichment_is_off() -> None:
    result = recipient_validate(row(address1=""))
    assert result.skip_reason == SkipReason.NO_ADDRESS
    assert result.errors == [{"field": "address1", "message": "address1 is empty"}]


def test_a_missing_address_is_valid_when_enrichment_is_on() -> None:
    result = recipient_validate(row(address1="", zip=""), enrichment=True)
    assert result.skip_reason == ""
    assert result.data["address1"] == ""


def test_a_contact_with_no_address_at_all_is_left_to_the_enrichment() -> None:
    """A Shopify customer with no default address has no country either: with
    enrichment on, that is a row to enrich (its country comes with the
    address), not one skipped as International."""
    no_address = row(address1="", city="", state="", zip="", country="")
    for countries in (None, frozenset({"US", "CA"})):
        result = recipient_validate(no_address, enrichment=True, countries=countries)
        assert (result.skip_reason, result.errors) == ("", [])
    assert recipient_validate(no_address).skip_reason == SkipReason.INTERNATIONAL


def test_enrichment_still_checks_a_country_the_row_gives_or_an_address_without_one() -> None:
    us_only = frozenset({"US"})
    foreign = recipient_validate(row(address1="", zip="", country="FR"), enrichment=True, countries=us_only)
    assert foreign.skip_reason == SkipReason.INTERNATIONAL
    no_country = recipient_validate(row(country=""), enrichment=True, countries=us_only)
    assert no_country.skip_reason == SkipReason.INTERNATIONAL
    assert no_country.errors[0]["field"] == "country"


def test_enrichment_does_not_excuse_a_missing_name() -> None:
    result = recipient_validate(row(address1="", first_name="", last_name=""), enrichment=True)
    assert result.skip_reason == SkipReason.NO_ADDRESS
    assert [e["field"] for e in result.errors] == ["name"]


def test_a_missing_zip_names_the_field_in_plain_words() -> None:
    result = recipient_validate(row(zip=""))
    # Spec: International = "Country check or address validation failed".
    assert result.skip_reason == SkipReason.INTERNATIONAL
    assert result.errors[0]["message"] == "zip is empty"


def test_an_unknown_country_is_skipped_international() -> None:
    result = recipient_validate(row(country="Narnia"))
    assert result.skip_reason == SkipReason.INTERNATIONAL
    assert "not a recognised country" in result.errors[0]["message"]


def test_a_country_the_printer_does_not_mail_to_is_skipped_international() -> None:
    result = recipient_validate(row(country="France"), countries=frozenset({"US"}))
    assert result.skip_reason == SkipReason.INTERNATIONAL
    assert result.errors == [{"field": "country", "message": "country FR is not mailed by this printer"}]
    assert recipient_validate(row(country="usa"), countries=frozenset({"US"})).skip_reason == ""


def test_a_too_long_field_is_an_error_not_a_truncation_surprise() -> None:
    result = recipient_validate(row(city="x" * 101))
    assert result.skip_reason == SkipReason.INTERNATIONAL
    assert result.errors == [{"field": "city", "message": "city is longer than 100 characters"}]
    assert len(result.data["city"]) == 100  # fits the column; the full value is kept by sync


def test_the_natural_key_prefers_the_external_id() -> None:
    a = natural_key({"external_id": "crm-1", "first_name": "Ada"})
    b = natural_key({"external_id": "crm-1", "first_name": "Grace"})
    assert a == b
    assert len(a) == 64
    assert a != natural_key({"external_id": "crm-2", "first_name": "Ada"})


def test_the_natural_key_ignores_case_spacing_and_country_spelling() -> None:
    a = natural_key(
        {"first_name": "Ada", "last_name": "Lovelace", "address1": "12  Main St", "zip": "1", "country": "US"}
    )
    b = natural_key(
        {"first_name": " ADA", "last_name": "lovelace ", "address1": "12 main st", "zip": "1", "country": "usa"}
    )
    assert a == b
    assert a != natural_key({"first_name": "Ada", "last_name": "Lovelace", "address1": "13 Main St", "zip": "1"})


def test_the_blocklist_address_key_matches_spelling_variants() -> None:
    a = blocklist_address_key(address1="12 North Main Street, Apt. 4", zip="62701-1234", country="US")
    b = blocklist_address_key(address1="12 n main st apt 4", zip="62701", country="usa")
    assert a == b
    assert a != blocklist_address_key(address1="12 n main st apt 5", zip="62701", country="US")


def test_the_blocklist_entry_key_uses_email_when_given() -> None:
    assert blocklist_entry_key(email=" Ada@Example.com") == blocklist_email_key("ada@example.com")
    assert blocklist_entry_key(address1="1 Way", zip="1", country="US") == blocklist_address_key(
        address1="1 way", zip="1", country="US"
    )


FIELDS = [
    "external_id",
    "first_name",
    "last_name",
    "company",
    "address1",
    "address2",
    "city",
    "state",
    "zip",
    "country",
]


@given(
    st.dictionaries(
        st.sampled_from(FIELDS),
        st.one_of(st.none(), st.integers(), st.text(max_size=300)),
    ),
    st.booleans(),
)
@settings(max_examples=300, deadline=None)
def test_any_row_is_either_valid_or_skipped_with_a_reason_and_never_raises(data: dict[str, Any], enrich: bool) -> None:
    result = recipient_validate(data, countries=frozenset({"US", "GB"}), enrichment=enrich)
    assert result.skip_reason in ("", SkipReason.NO_ADDRESS, SkipReason.INTERNATIONAL)
    assert bool(result.skip_reason) is bool(result.errors)
    assert len(result.natural_key) == 64
    assert len(result.data["address1"]) <= 200
    assert len(result.data["zip"]) <= 20
    if not result.skip_reason:
        to_enrich = enrich and not result.data["address1"] and not result.data["country"]
        assert result.data["country"] in ("US", "GB") or to_enrich
        assert result.data["first_name"] or result.data["last_name"]
        assert "*" not in result.data["first_name"] + result.data["last_name"]


@given(
    st.lists(st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1), min_size=1),
    st.sampled_from([" ", "  ", "\t", " \n "]),
)
def test_the_natural_key_ignores_letter_case_and_whitespace_runs(words: list[str], gap: str) -> None:
    base = {"first_name": " ".join(words), "address1": "1 Main St", "zip": "62701", "country": "US"}
    varied = {**base, "first_name": gap + gap.join(w.swapcase() for w in words) + gap}
    assert natural_key(base) == natural_key(varied)


def test_a_missing_address1_wins_over_other_address_errors() -> None:
    result = recipient_validate(row(address1="", zip=""))
    assert result.skip_reason == SkipReason.NO_ADDRESS


def test_a_bad_name_alone_is_no_address() -> None:
    assert recipient_validate(row(first_name="A*da")).skip_reason == SkipReason.NO_ADDRESS
