"""Stannp's approval on edge inputs (issue 7 item 8): a real state for US pieces,
postcodes of ASCII digits in every country, one line per address field."""

from __future__ import annotations

import pytest

from printers.stannp.client import StannpPrinter

GB = {"first_name": "Ada", "last_name": "Lovelace", "address1": "14 Grassmarket", "city": "Edinburgh"}
PLACES = {
    "GB": {**GB, "zip": "EH1 1YZ", "country": "GB"},
    "US": {**GB, "city": "San Francisco", "state": "CA", "zip": "94107", "country": "US"},
    "CA": {**GB, "city": "Ottawa", "state": "ON", "zip": "K1A 0A2", "country": "CA"},
}


def error_types(country: str, **changes: str) -> list[str]:
    return [error["type"] for error in StannpPrinter.approval_errors({**PLACES[country], **changes})]


@pytest.mark.parametrize("country", sorted(PLACES))
def test_it_approves_each_home_address(country: str) -> None:
    assert error_types(country) == []


@pytest.mark.parametrize("state", ["ZZ", "XY", "\uff23\uff21"])
def test_it_refuses_a_us_state_code_that_does_not_exist(state: str) -> None:
    assert error_types("US", state=state) == ["stannp_us_address"]


@pytest.mark.parametrize(
    ("country", "postcode", "expected"),
    [
        ("US", "\u0669\u0664\u0661\u0660\u0667", "stannp_us_address"),
        ("US", "94107-\u0661\u0662\u0663\u0664", "stannp_us_address"),
        ("GB", "EH\u0661 1YZ", "stannp_postcode"),
        ("CA", "K1A \u0660A2", "stannp_postcode"),
    ],
)
def test_it_refuses_postcodes_with_non_ascii_digits(country: str, postcode: str, expected: str) -> None:
    assert error_types(country, zip=postcode) == [expected]


@pytest.mark.parametrize("separator", ["\n", "\r", "\u2028", "\u2029", "\x0b", "\x0c", "\x85"])
@pytest.mark.parametrize("field", ["address1", "address2", "city", "company"])
def test_it_refuses_a_line_or_paragraph_separator(field: str, separator: str) -> None:
    assert error_types("GB", **{field: "Flat" + separator + "2"}) == ["stannp_line_break"]
