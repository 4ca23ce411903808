"""The approval checks the address IntelliPrint receives (issue 7, items 6 and 8)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from printers.approval import full_name
from printers.base import Address, PrinterError
from printers.intelliprint.address import LINE_SEPARATORS, trim
from printers.intelliprint.client import IntelliPrintPrinter
from printers.testing import make_request

RECIPIENT = {
    "first_name": "Grace",
    "last_name": "Hopper",
    "company": "",
    "address1": "2 Pier Road",
    "address2": "",
    "city": "Whitby",
    "state": "",
    "zip": "YO21 3PU",
    "country": "GB",
}
LINE_FIELDS = ("first_name", "last_name", "company", "address1", "address2", "city")
SEPARATORS = sorted(LINE_SEPARATORS)


def error_types(data: dict[str, Any]) -> list[str]:
    return [error["type"] for error in IntelliPrintPrinter.approval_errors(data)]


def sent_address(data: dict[str, Any]) -> dict[str, str]:
    """The address the client's payload carries for a recipient (as the pipeline builds it)."""
    to = Address(
        # The name as the approval sees it: built from the trimmed first and last names.
        name=full_name({key: trim(data[key]) for key in ("first_name", "last_name")}),
        company=data["company"],
        address1=data["address1"],
        address2=data["address2"],
        city=data["city"],
        zip=data["zip"],
        country=data["country"],
    )
    payload = IntelliPrintPrinter({}).payload(make_request(to=to, size="A6"))
    address: dict[str, str] = payload["recipients"][0]["address"]
    return address


# ---------------------------------------------------------------------- the line as sent
def test_the_company_in_front_of_the_line_counts_towards_its_length() -> None:
    # 144 characters from address1 and city; the payload puts "Acme Ltd, " in front: 154.
    data = {**RECIPIENT, "company": "Acme Ltd", "address1": "X" * 100, "city": "Y" * 42}
    assert "intelliprint_line_too_long" in error_types(data)
    (error,) = IntelliPrintPrinter.approval_errors(data)
    assert "got 154" in error["msg"]
    with pytest.raises(PrinterError, match="154") as refused:
        sent_address(data)
    assert refused.value.permanent is True


def test_a_line_of_exactly_150_characters_with_its_company_is_approved_and_sent_whole() -> None:
    data = {**RECIPIENT, "company": "Acme Ltd", "address1": "X" * 100, "address2": "Z", "city": "Y" * 35}
    assert error_types(data) == []
    line = sent_address(data)["line"]
    assert len(line) == 150
    assert line.startswith("Acme Ltd, XXX")


def test_a_company_without_a_name_takes_the_name_slot_and_stays_off_the_line() -> None:
    data = {**RECIPIENT, "first_name": "", "last_name": "", "company": "Acme Ltd"}
    assert sent_address(data) == {
        "name": "Acme Ltd",
        "line": "2 Pier Road, Whitby",
        "postcode": "YO21 3PU",
        "country": "GB",
    }


@pytest.mark.parametrize("field", LINE_FIELDS)
@pytest.mark.parametrize("separator", SEPARATORS, ids=[f"U+{ord(c):04X}" for c in SEPARATORS])
def test_a_line_break_of_any_kind_in_any_part_of_the_address_is_refused(field: str, separator: str) -> None:
    data = {**RECIPIENT, field: f"Part{separator}Two"}
    assert "intelliprint_line_break" in error_types(data)
    with pytest.raises(PrinterError, match="line breaks"):
        sent_address(data)


def test_a_line_break_at_the_end_of_a_part_is_dropped_from_both_the_check_and_the_payload() -> None:
    data = {**RECIPIENT, "city": "Whitby\u2028", "address1": "\n2 Pier Road\r\n"}
    assert error_types(data) == []
    assert sent_address(data)["line"] == "2 Pier Road, Whitby"


def test_a_record_separator_at_the_end_of_a_part_is_refused_by_both() -> None:
    # Python's str.strip() would drop it; the approval model keeps it, so the builder must too.
    data = {**RECIPIENT, "city": "Whitby\x1c"}
    assert "intelliprint_line_break" in error_types(data)
    with pytest.raises(PrinterError, match="line breaks"):
        sent_address(data)


line_part = st.text(alphabet=st.sampled_from("ab ,\n\x1c\x85\u2028"), max_size=60)


@given(
    first=line_part,
    last=line_part,
    company=line_part,
    address1=line_part.filter(lambda v: v.strip()),
    address2=line_part,
    city=line_part,
)
def test_the_approval_accepts_exactly_the_lines_the_payload_can_carry(
    first: str, last: str, company: str, address1: str, address2: str, city: str
) -> None:
    data = {
        **RECIPIENT,
        "first_name": first,
        "last_name": last,
        "company": company,
        "address1": address1,
        "address2": address2,
        "city": city,
    }
    line_errors = {"intelliprint_line_break", "intelliprint_line_too_long"} & set(error_types(data))
    try:
        sent_address(data)
    except PrinterError:
        assert line_errors
    else:
        assert not line_errors


# ---------------------------------------------------------------------- postcode (ASCII only)
@pytest.mark.parametrize(
    "postcode",
    [
        "SW1A \u0661AA",  # Arabic-Indic digit one
        "SW\u06f1A 1AA",  # extended Arabic-Indic digit one
        "SW\uff11A 1AA",  # full-width digit one
        "\u017fW1A 1AA",  # long s: upper() makes it an ASCII S
        "\uff33W1A 1AA",  # full-width S
    ],
)
def test_a_postcode_with_non_ascii_digits_or_letters_is_refused(postcode: str) -> None:
    assert "intelliprint_postcode" in error_types({**RECIPIENT, "zip": postcode})


@pytest.mark.parametrize(("written", "sent"), [("sw1a2aa", "SW1A 2AA"), (" yo21 3pu ", "YO21 3PU")])
def test_the_postcode_is_sent_as_the_approval_normalized_it(written: str, sent: str) -> None:
    assert error_types({**RECIPIENT, "zip": written}) == []
    assert sent_address({**RECIPIENT, "zip": written})["postcode"] == sent


def test_the_country_is_sent_as_the_approval_normalized_it() -> None:
    data = {**RECIPIENT, "country": "United Kingdom"}
    assert error_types(data) == []
    assert sent_address(data)["country"] == "GB"
