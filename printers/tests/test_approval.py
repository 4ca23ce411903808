from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from printers.base import Printer
from printers.intelliprint.approval import IntelliprintRecipientApproval
from printers.lob.approval import LobRecipientApproval
from printers.sandbox.approval import SandboxRecipientApproval
from printers.stannp.approval import StannpRecipientApproval
from printers.taylor.approval import TaylorRecipientApproval
from printers.testing import US_RECIPIENT

US = US_RECIPIENT
UK = {
    **US,
    "address1": "10 Downing St",
    "address2": "",
    "city": "London",
    "state": "",
    "zip": "SW1A 2AA",
    "country": "GB",
}
CA = {
    **US,
    "address1": "80 Wellington St",
    "address2": "",
    "city": "Ottawa",
    "state": "ON",
    "zip": "K1A 0A2",
    "country": "CA",
}


def errors(model: type[BaseModel], data: dict[str, Any]) -> list[dict[str, Any]]:
    class Probe(Printer):
        approval_model = model

    return Probe.approval_errors(data)


def types(model: type[BaseModel], data: dict[str, Any]) -> set[str]:
    return {e["type"] for e in errors(model, data)}


# ---------------------------------------------------------------- Lob (US)
def test_lob_approves_a_complete_us_address():
    assert errors(LobRecipientApproval, US) == []


def test_lob_errors_are_json_ready_with_location_message_and_type():
    [error] = errors(LobRecipientApproval, {**US, "zip": "9410"})
    assert error == {"loc": ["zip"], "msg": "zip must be 5 digits or ZIP+4 (12345-6789), got '9410'", "type": "lob_zip"}


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"first_name": "", "last_name": "", "company": ""}, "lob_name_or_company"),
        ({"first_name": "A" * 20, "last_name": "B" * 20}, "lob_name_too_long"),  # 41 with the space
        ({"company": "C" * 41}, "lob_company_too_long"),
        ({"address1": ""}, "missing"),
        ({"address1": "A" * 65, "address2": ""}, "lob_line_too_long"),
        ({"address1": "A" * 40, "address2": "B" * 11}, "lob_address_length"),
        ({"city": "  "}, "missing"),
        ({"state": "Calif"}, "lob_state"),
        ({"state": ""}, "lob_state"),
        ({"zip": "94107-12"}, "lob_zip"),
        ({"zip": "ABCDE"}, "lob_zip"),
        ({"country": "CA"}, "lob_country"),
    ],
)
def test_lob_rejects_each_broken_rule(change, expected):
    assert expected in types(LobRecipientApproval, {**US, **change})


@pytest.mark.parametrize(
    "change",
    [
        {"first_name": "", "last_name": "", "company": "Acme"},  # company alone is enough
        {"first_name": "A" * 19, "last_name": "B" * 20},  # exactly 40
        {"address1": "A" * 40, "address2": "B" * 10},  # exactly 50 together
        {"zip": "94107-1234"},
        {"state": "ca", "country": "usa"},  # normalized
        {"address2": None, "email": None},  # None is empty
    ],
)
def test_lob_accepts_the_edges_of_each_rule(change):
    assert errors(LobRecipientApproval, {**US, **change}) == []


# ---------------------------------------------------------------- IntelliPrint (UK)
@pytest.mark.parametrize("postcode", ["SW1A 2AA", "sw1a2aa", "M1 1AE", "B33 8TH", "CR2 6XH", "DN55 1PT", "EC1A 1BB"])
def test_intelliprint_approves_uk_addresses_with_valid_postcodes(postcode):
    assert errors(IntelliprintRecipientApproval, {**UK, "zip": postcode}) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"first_name": "", "last_name": ""}, "intelliprint_name"),
        ({"address1": ""}, "missing"),
        ({"address1": "10 Downing St\nWestminster"}, "intelliprint_line_break"),
        ({"address1": "A" * 100, "address2": "B" * 40, "city": "C" * 20}, "intelliprint_line_too_long"),
        ({"zip": "94107"}, "intelliprint_postcode"),
        ({"zip": "SW1A"}, "intelliprint_postcode"),
        ({"country": "US"}, "intelliprint_country"),
    ],
)
def test_intelliprint_rejects_each_broken_rule(change, expected):
    assert expected in types(IntelliprintRecipientApproval, {**UK, **change})


def test_intelliprint_accepts_uk_as_an_alias_of_gb():
    assert errors(IntelliprintRecipientApproval, {**UK, "country": "uk"}) == []


# ---------------------------------------------------------------- Stannp (GB, US, CA)
@pytest.mark.parametrize("data", [UK, US, CA])
def test_stannp_approves_each_of_its_countries(data):
    assert errors(StannpRecipientApproval, data) == []


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({**UK, "first_name": "", "last_name": "", "company": ""}, "stannp_name_or_company"),
        ({**UK, "address1": ""}, "missing"),
        ({**UK, "city": ""}, "missing"),
        ({**UK, "zip": "94107"}, "stannp_postcode"),
        ({**US, "state": ""}, "stannp_us_address"),
        ({**US, "zip": "SW1A 2AA"}, "stannp_us_address"),
        ({**CA, "zip": "12345"}, "stannp_postcode"),
        ({**US, "country": "FR"}, "stannp_country"),
    ],
)
def test_stannp_rejects_each_broken_rule(data, expected):
    assert expected in types(StannpRecipientApproval, data)


# ---------------------------------------------------------------- Taylor (US)
def test_taylor_approves_a_complete_us_address():
    assert errors(TaylorRecipientApproval, US) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"first_name": "", "last_name": "", "company": ""}, "taylor_name_or_company"),
        ({"address1": ""}, "missing"),
        ({"city": ""}, "missing"),
        ({"state": "C"}, "taylor_state"),
        ({"zip": "941"}, "taylor_zip"),
        ({"country": "GB"}, "taylor_country"),
    ],
)
def test_taylor_rejects_each_broken_rule(change, expected):
    assert expected in types(TaylorRecipientApproval, {**US, **change})


# ---------------------------------------------------------------- Sandbox (lenient)
def test_sandbox_approves_anything_with_an_address_a_zip_and_a_country():
    assert errors(SandboxRecipientApproval, {"address1": "1 Main St", "zip": "x", "country": "FR"}) == []


@pytest.mark.parametrize("missing", ["address1", "zip", "country"])
def test_sandbox_still_requires_address1_zip_and_country(missing):
    data = {"address1": "1 Main St", "zip": "x", "country": "FR", missing: " "}
    assert errors(SandboxRecipientApproval, data) == [
        {"loc": [missing], "msg": f"{missing} is required", "type": "missing"}
    ]
