"""Edge inputs at sync time (issue 7, item 8) and what a failed row puts in recipient.json (item 1)."""

from __future__ import annotations

from typing import Any

import pytest

from campaigns.enums import CampaignRecipientSkipReason as SkipReason
from campaigns.recipient_json import ALTERED_FIELDS, SOURCE_ROW, VALIDATION_ERRORS
from campaigns.validation import RECIPIENT_FIELDS, recipient_recheck, recipient_validate, stored_copy
from common.geo import US_STATES, country_normalize, us_state_normalize
from common.text import has_asterisk, storable, strip_invisible


def row(**overrides: Any) -> dict[str, Any]:
    base = {"first_name": "Ada", "last_name": "Lovelace", "address1": "12 Analytical Way", "city": "Springfield"}
    return {**base, "state": "IL", "zip": "62701", "country": "US", **overrides}


def errors(**overrides: Any) -> list[dict[str, str]]:
    return recipient_validate(row(**overrides)).errors


# --- zips: ASCII only -------------------------------------------------------------------


@pytest.mark.parametrize(
    "zip_code",
    [
        "\u0666\u0662\u0667\u0660\u0661",  # Arabic-Indic digits
        "\u06f6\u06f2\u06f7\u06f0\u06f1",  # Persian digits
        "\u096c\u0968\u096d\u0966\u0967",  # Devanagari digits
        "62701/1234",
        "-",
        "N/A",
    ],
)
def test_a_zip_with_anything_but_ascii_letters_digits_spaces_and_hyphens_is_refused(zip_code: str) -> None:
    result = recipient_validate(row(zip=zip_code))
    assert result.skip_reason == SkipReason.INTERNATIONAL
    assert result.errors == [
        {"field": "zip", "message": "zip may hold only the digits 0-9, the letters A-Z, spaces and hyphens"}
    ]


@pytest.mark.parametrize(
    ("zip_code", "stored"),
    [("62701-1234", "62701-1234"), ("SW1A 1AA", "SW1A 1AA"), ("\uff16\uff12\uff17\uff10\uff11", "62701")],
)
def test_ascii_postcodes_pass_and_full_width_digits_are_stored_as_ascii(zip_code: str, stored: str) -> None:
    result = recipient_validate(row(zip=zip_code, country="GB" if " " in zip_code else "US"))
    assert result.skip_reason == ""
    assert result.data["zip"] == stored


# --- invisible characters count as empty -----------------------------------------------


@pytest.mark.parametrize(
    "blank",
    [
        "\u200b",  # zero-width space
        "\u200c\u200d",  # ZWNJ, ZWJ
        "\ufeff",  # BOM
        "\u00ad",  # soft hyphen
        "\u2060\u180e",  # word joiner, Mongolian vowel separator (Cf)
        "\u3000\u00a0\u2007",  # ideographic, no-break and figure spaces (Zs)
        " \u200b\t\u3164 ",  # whitespace, ZWSP and a Hangul filler mixed
        "\ufe0f",  # a variation selector alone
        "\x01\x7f",  # ASCII controls
    ],
)
def test_an_address1_made_of_invisible_characters_is_empty(blank: str) -> None:
    result = recipient_validate(row(address1=blank))
    assert result.skip_reason == SkipReason.NO_ADDRESS
    assert result.errors == [{"field": "address1", "message": "address1 is empty"}]
    assert result.data["address1"] == ""


def test_invisible_names_are_no_name_and_an_invisible_zip_is_empty() -> None:
    assert errors(first_name="\u200b", last_name="\ufeff") == [
        {"field": "name", "message": "first_name and last_name are both empty"}
    ]
    assert errors(zip="\u200b\u00ad") == [{"field": "zip", "message": "zip is empty"}]


def test_invisible_characters_around_a_value_are_stripped_and_kept_inside() -> None:
    result = recipient_validate(row(first_name="\ufeffAda\u200b", last_name="Mi\u200cr"))
    assert result.skip_reason == ""
    assert (result.data["first_name"], result.data["last_name"]) == ("Ada", "Mi\u200cr")
    assert strip_invisible("\u200b \u00ad") == ""
    assert strip_invisible("\x00a\x00") == "a"  # the validator refuses NUL before it strips


# --- asterisks and their look-alikes in names ----------------------------------------------


@pytest.mark.parametrize("star", ["*", "\uff0a", "\ufe61", "\u2217", "\u204e", "\u2731", "\u066d", "\u2051"])
@pytest.mark.parametrize("name", ["first_name", "last_name"])
def test_an_asterisk_or_a_look_alike_in_a_name_is_refused(star: str, name: str) -> None:
    result = recipient_validate(row(**{name: f"Ada{star}"}))
    assert result.skip_reason == SkipReason.NO_ADDRESS
    assert result.errors == [{"field": name, "message": f"{name} contains an asterisk"}]
    assert has_asterisk(star)


def test_ordinary_names_have_no_asterisk() -> None:
    assert not any(has_asterisk(n) for n in ("Ada", "O'Brien", "Zoë", "José-María", "Ng\u00e2n"))


# --- US states -------------------------------------------------------------------------------


@pytest.mark.parametrize("state", ["ZZ", "XX", "Narnia", "IL, Cook", "Ill."])
def test_a_us_address_with_a_state_that_is_not_a_us_state_is_refused(state: str) -> None:
    result = recipient_validate(row(state=state))
    assert result.skip_reason == SkipReason.INTERNATIONAL
    assert result.errors == [{"field": "state", "message": f"state {state!r} is not a US state"}]


@pytest.mark.parametrize(
    ("state", "code"),
    [("IL", "IL"), ("il", "IL"), (" Illinois ", "IL"), ("New York", "NY"), ("PR", "PR"), ("AE", "AE"), ("", "")],
)
def test_a_us_state_is_stored_as_its_code_and_an_empty_state_passes(state: str, code: str) -> None:
    result = recipient_validate(row(state=state, country="usa"))
    assert result.skip_reason == ""
    assert result.data["state"] == code


def test_the_state_of_a_non_us_address_is_not_checked() -> None:
    assert recipient_validate(row(state="ZZ", country="GB", zip="SW1A 1AA")).data["state"] == "ZZ"


def test_the_state_rule_waits_for_a_recognised_country() -> None:
    # A bad country is the error; the state is not judged against it.
    assert [e["field"] for e in errors(country="Narnia", state="ZZ")] == ["country"]


def test_the_state_table_knows_every_code_and_nothing_else() -> None:
    assert len(US_STATES) == 63  # 50 states, DC, 9 territories and freely associated states, 3 military
    assert all(us_state_normalize(code) == code for code in US_STATES)
    assert us_state_normalize("ZZ") is None
    assert us_state_normalize("") is None
    assert country_normalize("\uff35\uff33") == "US"  # full-width "US"


# --- what a failed row puts in recipient.json ---------------------------------------------


def test_a_valid_row_puts_nothing_in_the_json() -> None:
    assert recipient_validate(row()).json == {}


def test_a_failed_row_keeps_what_was_received_and_names_what_was_altered() -> None:
    raw = row(address1="9" * 250, city="Spring\x00field", first_name="  Ada  ", zip=62701, company=None)
    result = recipient_validate(raw)
    assert result.json[VALIDATION_ERRORS] == [
        {"field": "address1", "message": "address1 is longer than 200 characters"},
        {"field": "city", "message": "city contains a NUL byte or an invalid character"},
    ]
    assert result.json[SOURCE_ROW] == {
        "first_name": "  Ada  ",
        "last_name": "Lovelace",
        "address1": "9" * 250,
        "city": "Spring\\x00field",
        "state": "IL",
        "zip": "62701",
        "country": "US",
    }
    # Stripped spaces and a number read as text are not alterations.
    assert result.json[ALTERED_FIELDS] == ["address1", "city"]
    assert (result.data["address1"], result.data["city"]) == ("9" * 200, "Spring\\x00field")


def test_a_failed_row_without_altered_fields_has_no_altered_mark() -> None:
    result = recipient_validate(row(zip=""))
    assert set(result.json) == {VALIDATION_ERRORS, SOURCE_ROW}
    assert result.json[VALIDATION_ERRORS] == [{"field": "zip", "message": "zip is empty"}]


def test_messages_in_the_json_are_storable() -> None:
    result = recipient_validate(row(country="Nar\udc80nia"))
    assert "\udc80" not in str(result.json)
    assert result.json[SOURCE_ROW]["country"] == "Nar\\udc80nia"


@pytest.mark.parametrize(
    ("value", "altered"),
    [
        ("x" * 201, True),  # cut
        ("a\x00b", True),  # written out
        ("a\ud800", True),  # lone surrogate written out
        ("\x00a", True),  # a NUL at the edge is written out, not stripped away
        (True, True),  # not text
        (["a"], True),
        ({"a": 1}, True),
        ("  ok  ", False),  # stripped: what the validator does to a valid value too
        ("\u200bok", False),
        (12, False),  # numbers are read as text
        (1.5, False),
        (None, False),
        ("", False),
    ],
)
def test_altered_fields_are_the_ones_stored_differently_from_what_was_received(value: Any, altered: bool) -> None:
    result = recipient_validate(row(first_name=value, last_name="", address1=""))
    assert ("first_name" in result.json.get(ALTERED_FIELDS, [])) is altered


def test_the_stored_copy_fits_its_column_and_is_found_again_from_the_source_row() -> None:
    for name, limit in RECIPIENT_FIELDS.items():
        received = " " + "\x00" * limit + " "
        copy = stored_copy(name, received)
        assert len(copy) == limit
        assert stored_copy(name, storable(received)) == copy
    assert stored_copy("city", "x" * 99 + " y") == "x" * 99  # no trailing space after the cut
    assert stored_copy("city", None) == ""


# --- the re-check ---------------------------------------------------------------------------


def test_a_recheck_without_altered_fields_is_a_validation() -> None:
    assert recipient_recheck(row(), stored={}).skip_reason == ""
    assert recipient_recheck(row(zip=""), stored={}).errors == [{"field": "zip", "message": "zip is empty"}]


def test_a_recheck_of_an_altered_field_whose_received_value_is_lost_fails() -> None:
    result = recipient_recheck(row(), stored={ALTERED_FIELDS: ["city"]})
    assert result.errors == [{"field": "city", "message": "city was changed on import: edit it"}]
    assert result.json[ALTERED_FIELDS] == ["city"]
    assert SOURCE_ROW not in result.json


def test_a_recheck_ignores_unknown_or_malformed_marks() -> None:
    assert recipient_recheck(row(), stored={ALTERED_FIELDS: ["shoe_size"]}).skip_reason == ""
    assert recipient_recheck(row(), stored={ALTERED_FIELDS: "city"}).skip_reason == ""


def test_a_recheck_keeps_the_source_row_and_the_skip_reason_of_the_field() -> None:
    stored = {ALTERED_FIELDS: ["first_name"], SOURCE_ROW: {"first_name": "A" * 300}}
    result = recipient_recheck(row(first_name="A" * 200, last_name=""), stored=stored)
    assert result.skip_reason == SkipReason.NO_ADDRESS
    assert result.json[SOURCE_ROW] == {"first_name": "A" * 300}
    stored = {ALTERED_FIELDS: ["zip"], SOURCE_ROW: {"zip": "1" * 30}}
    assert recipient_recheck(row(zip="1" * 20), stored=stored).skip_reason == SkipReason.INTERNATIONAL


def test_a_recheck_names_how_the_field_was_altered() -> None:
    cut = {ALTERED_FIELDS: ["address1"], SOURCE_ROW: {"address1": "9" * 250}}
    assert recipient_recheck(row(address1="9" * 200), stored=cut).errors == [
        {"field": "address1", "message": "address1 was cut to 200 characters on import: edit it"}
    ]
    nul = {ALTERED_FIELDS: ["city"], SOURCE_ROW: {"city": "Spring\\x00field"}}
    assert recipient_recheck(row(city="Spring\\x00field"), stored=nul).errors == [
        {
            "field": "city",
            "message": "city held a NUL byte or an invalid character, written out as text on import: edit it",
        }
    ]
    # Exactly the column's length, not cut: it was not text.
    listed = {ALTERED_FIELDS: ["city"], SOURCE_ROW: {"city": str(["x" * 96])}}
    assert recipient_recheck(row(city=str(["x" * 96])), stored=listed).errors == [
        {"field": "city", "message": "city was not text and was stored as text on import: edit it"}
    ]
    # Edited: checked like any other field.
    assert recipient_recheck(row(city="Springfield"), stored=nul).errors == []


def test_a_recheck_reads_every_mark_past_an_unknown_one() -> None:
    stored = {ALTERED_FIELDS: ["shoe_size", "city"], SOURCE_ROW: {"city": "a\\x00"}}
    assert [e["field"] for e in recipient_recheck(row(city="a\\x00"), stored=stored).errors] == ["city"]


def test_a_recheck_counts_a_missing_field_as_empty() -> None:
    data = row()  # no company
    stored = {ALTERED_FIELDS: ["company"], SOURCE_ROW: {"company": "\u200b"}}
    assert "company" not in data
    assert [e["field"] for e in recipient_recheck(data, stored=stored).errors] == ["company"]


def test_a_recheck_uses_the_campaigns_countries_and_enrichment() -> None:
    assert recipient_recheck(row(address1=""), stored={}).skip_reason == SkipReason.NO_ADDRESS
    assert recipient_recheck(row(address1=""), stored={}, enrichment=True).skip_reason == ""
    result = recipient_recheck(row(country="GB", zip="SW1A 1AA"), stored={}, countries=frozenset({"US"}))
    assert result.errors == [{"field": "country", "message": "country GB is not mailed by this printer"}]
