"""Taylor's approval on edge inputs (issue 7 item 8): real US state codes, ASCII-digit
ZIPs, one line per address field."""

from __future__ import annotations

import pytest

from printers.taylor.client import TaylorPrinter

SPRINGFIELD = {
    "first_name": "Ada",
    "last_name": "Byron",
    "address1": "1 Main St",
    "city": "Springfield",
    "state": "IL",
    "zip": "62701",
    "country": "US",
}


def error_types(**changes: str) -> list[str]:
    return [error["type"] for error in TaylorPrinter.approval_errors({**SPRINGFIELD, **changes})]


def test_it_approves_a_real_state_in_any_case() -> None:
    assert error_types(state="il") == []


@pytest.mark.parametrize("state", ["ZZ", "QQ", "\uff29\uff2c"])
def test_it_refuses_a_state_code_that_does_not_exist(state: str) -> None:
    assert error_types(state=state) == ["taylor_state"]


@pytest.mark.parametrize(
    "zip_code", ["\u0666\u0662\u0667\u0660\u0661", "\uff16\uff12\uff17\uff10\uff11", "62701-\u06f1\u06f2\u06f3\u06f4"]
)
def test_it_refuses_a_zip_of_non_ascii_digits(zip_code: str) -> None:
    assert error_types(zip=zip_code) == ["taylor_zip"]


@pytest.mark.parametrize("separator", ["\n", "\r", "\u2028", "\u2029", "\x0b", "\x0c", "\x85"])
@pytest.mark.parametrize("field", ["address1", "address2", "city", "last_name"])
def test_it_refuses_a_line_or_paragraph_separator(field: str, separator: str) -> None:
    assert error_types(**{field: "Apt" + separator + "4"}) == ["taylor_line_break"]
