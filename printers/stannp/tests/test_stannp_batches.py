"""Stannp batches read item by item (issue 7 item 11): one odd item no longer quarantines
the delivery, and an envelope without its array is an error, never a silent ``[]``."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailpieces.status import MailpieceStatus as S
from printers.base import PrinterEvent
from printers.registry import printer_conf
from printers.stannp.client import StannpPrinter
from printers.testing import read_fixture

ODD_ITEMS = [
    ("batch_item_status_null", "no status", "52000431", "pc:7:1051:0"),
    ("batch_item_float_id", "id is not a string or an integer", "", "pc:7:1052:0"),
    ("batch_item_without_id", "no id", "", "pc:7:1053:0"),
    ("batch_item_nested_id", "id is not a string or an integer", "", ""),
    ("batch_item_not_an_object", "not an object", "", ""),
]


def parse(body: bytes | dict[str, Any], content_type: str = "application/json") -> list[PrinterEvent]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return StannpPrinter(printer_conf("stannp")).parse_webhook(raw, content_type)


@pytest.mark.parametrize(("name", "problem", "printer_id", "reference"), ODD_ITEMS)
def test_an_odd_item_is_reported_and_the_good_one_goes_on(name: str, problem: str, printer_id: str, reference: str):
    good, odd = parse(read_fixture("stannp", name))
    assert (good.printer_id, good.status, good.event_id) == ("52000430", S.HANDED_OVER, "52000430:dispatched")
    assert good.problem == ""
    assert problem in odd.problem
    assert odd.raw["problem"] == odd.problem  # kept in the recorded body too
    assert odd.raw["item"] == json.loads(read_fixture("stannp", name))["mailpieces"][1]
    assert odd.status == S.UNKNOWN  # recorded, never applied
    assert odd.event_id.startswith("problem:")
    assert (odd.printer_id, odd.reference) == (printer_id, reference)


def test_a_problem_keeps_the_same_id_across_stannps_retries_of_the_delivery() -> None:
    body = json.loads(read_fixture("stannp", "batch_item_without_id"))
    first = parse(body)[1].event_id
    assert parse({**body, "retries": 2})[1].event_id == first
    assert parse({**body, "created": "2026-03-06 09:30:00"})[1].event_id != first


def test_an_array_under_another_key_is_an_error_naming_what_was_found() -> None:
    with pytest.raises(ValueError, match=r"no 'mailpieces' list \(its fields: .*items"):
        parse(read_fixture("stannp", "batch_array_under_another_key"))


@pytest.mark.parametrize(
    "body",
    [
        {"event": "mailpiece_status", "created": "2026-03-05 09:30:00"},
        {"event": "mailpiece_status", "mailpieces": {"id": 1, "status": "delivered"}},
        {"event": "mailpiece_status", "campaigns": [{"id": 1, "status": "delivered"}]},
        {"event": "campaign_status", "mailpieces": [{"id": 1, "status": "dispatched"}]},
    ],
)
def test_an_envelope_without_its_events_array_is_an_error(body: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="stannp"):
        parse(body)


def test_an_event_nobody_knows_is_an_error_not_a_silent_nothing() -> None:
    with pytest.raises(ValueError, match="'recipient_blacklisted' is not one"):
        parse({"event": "recipient_blacklisted", "recipients": [{"id": 1}]})


def test_a_form_encoded_batch_reports_its_odd_item_too() -> None:
    fields = {"event": "mailpiece_status", "mailpieces[0][id]": "7", "mailpieces[0][status]": "delivered"}
    fields["mailpieces[1][status]"] = "delivered"
    good, odd = parse(urlencode(fields).encode(), "application/x-www-form-urlencoded")
    assert (good.printer_id, good.status) == ("7", S.DELIVERED)
    assert odd.problem == "the item has no id"


def test_an_empty_status_is_a_problem_not_a_status() -> None:
    (odd,) = parse({"event": "mailpiece_status", "mailpieces": [{"id": 9, "status": " "}]})
    assert (odd.printer_id, odd.problem) == ("9", "the item's status is empty")


items = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["id", "status", "tags"]), inner),
    max_leaves=8,
)


@given(st.lists(items, max_size=6))
def test_every_item_gives_exactly_one_event_whatever_it_holds(mailpieces: list[Any]) -> None:
    events = parse({"event": "mailpiece_status", "created": "2026-03-05 09:30:00", "mailpieces": mailpieces})
    assert len(events) == len(mailpieces)  # nothing disappears without a trace
    for event in events:
        assert event.event_id.startswith("problem:") == bool(event.problem)
        assert event.status == S.UNKNOWN or not event.problem
