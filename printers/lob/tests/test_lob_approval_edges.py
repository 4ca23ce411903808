"""Lob's approval on edge inputs (issue 7 item 8): only real US state codes, ZIPs of
ASCII digits, and no line or paragraph separator in any address field."""

from __future__ import annotations

from dataclasses import replace

import httpx
import pytest

from printers.lob.client import LobPrinter
from printers.simulator import Simulator
from printers.testing import US_ADDRESS, US_RECIPIENT, make_request

ADDRESS = US_RECIPIENT
SEPARATORS = ["\n", "\r", "\u2028", "\u2029", "\x0b", "\x0c", "\x85"]


def error_types(**changes: str) -> list[str]:
    return [error["type"] for error in LobPrinter.approval_errors({**ADDRESS, **changes})]


@pytest.mark.parametrize("state", ["CA", "ny", "DC", "PR", "AE"])
def test_it_approves_real_state_codes(state: str) -> None:
    assert error_types(state=state) == []


@pytest.mark.parametrize("state", ["ZZ", "XX", "C", "CAL", "\uff23\uff21", ""])
def test_it_refuses_a_state_that_is_not_a_us_state(state: str) -> None:
    assert error_types(state=state) == ["lob_state"]


@pytest.mark.parametrize(
    "zip_code",
    [
        "\u0669\u0664\u0661\u0660\u0667",
        "\uff19\uff14\uff11\uff10\uff17",
        "94107-\u0661\u0662\u0663\u0664",
        "9410\uff17",
    ],
)
def test_it_refuses_a_zip_of_non_ascii_digits(zip_code: str) -> None:
    assert error_types(zip=zip_code) == ["lob_zip"]


@pytest.mark.parametrize("separator", SEPARATORS)
@pytest.mark.parametrize("field", ["address1", "address2", "city", "first_name", "company"])
def test_it_refuses_a_line_break_in_any_address_field(field: str, separator: str) -> None:
    value = ADDRESS.get(field) or "Acme"
    assert error_types(**{field: value[:3] + separator + value[3:]}) == ["lob_line_break"]


@pytest.mark.parametrize("separator", SEPARATORS)
def test_it_refuses_a_line_break_even_at_the_end_of_a_line(separator: str) -> None:
    # The payload carries the line as stored: stripping it for the check would approve what Lob then gets.
    assert error_types(address1="185 Berry St" + separator) == ["lob_line_break"]


def test_the_simulator_refuses_a_zip_of_non_ascii_digits_as_lob_does(simulator: Simulator) -> None:
    # Lob's published pattern is an ECMA one, where \d is ASCII only.
    body = LobPrinter({}).payload(make_request(to=replace(US_ADDRESS, zip="\u0669\u0664\u0661\u0660\u0667")))
    response = httpx.post(simulator.url("lob") + "/postcards", json=body, auth=("test_lob_key", ""))
    assert response.status_code == 422
    assert simulator.physical_pieces("lob") == 0
