"""``IntelliPrintPrinter.lookup_report``: what a print job (``GET /prints``) says.

The job has the shape of vendors.md §3.1 (``{object: "print", id, letters: [{id, status}], …}``);
the letter's times are read as in the ``letter.updated`` webhook
(``shared/vendor-examples/intelliprint``), epoch seconds.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from mailpieces.status import MailpieceStatus as S
from printers.base import Submission
from printers.intelliprint import IntelliPrintPrinter
from printers.testing import offline

REFERENCE = "pc:7:00004242:0"
PRINT_ID = "print_9TgYc04nBd"
SHIPPED = 1772445604


def job(**letter: Any) -> dict[str, Any]:
    return {
        "object": "print",
        "id": PRINT_ID,
        "created": 1772359204,
        "testmode": False,
        "confirmed": True,
        "type": "postcard",
        "reference": REFERENCE,
        "metadata": {"recipient_id": "4242", "campaign_id": "7"},
        "letters": [{"id": "ltr_Q2mX8fKp1L", **letter}],
        "cost": {"amount": 61_000_000, "currency": "GBP"},
    }


def report(raw: dict[str, Any]):
    return offline(IntelliPrintPrinter).lookup_report(Submission(printer_id=PRINT_ID, reference=REFERENCE, raw=raw))


@pytest.mark.parametrize(
    ("vendor_status", "status"),
    [("waiting_to_print", S.RECEIVED), ("printing", S.PRODUCING), ("enclosing", S.PRODUCING)],
)
def test_a_letter_before_shipping_has_its_status_and_no_time(vendor_status, status):
    event = report(job(status=vendor_status))
    assert event is not None
    assert (event.vendor_status, event.status, event.occurred_at) == (vendor_status, status, None)
    assert event.event_id == f"lookup:{PRINT_ID}:{vendor_status}"
    assert (event.printer_id, event.reference) == (PRINT_ID, REFERENCE)


def test_a_shipped_letter_has_its_shipped_date():
    event = report(job(status="sent", shipped_date=SHIPPED))
    assert event is not None
    assert event.status == S.IN_TRANSIT
    assert event.occurred_at == dt.datetime.fromtimestamp(SHIPPED, dt.UTC)
    assert event.event_id == f"lookup:{PRINT_ID}:sent:{SHIPPED}"


def test_a_returned_letter_has_its_return_date():
    event = report(
        job(status="returned", shipped_date=SHIPPED, returned={"date": SHIPPED + 86_400, "reason": "Addressee gone"})
    )
    assert event is not None
    assert event.status == S.RETURNED
    assert event.occurred_at == dt.datetime.fromtimestamp(SHIPPED + 86_400, dt.UTC)


def test_a_bad_time_is_dropped_not_raised():
    event = report(job(status="shipping", shipped_date=10**18))
    assert event is not None
    assert (event.status, event.occurred_at) == (S.HANDED_OVER, None)
    assert report(job(status="shipping", shipped_date="soon")).occurred_at is None


def test_a_job_without_a_letter_status_says_nothing():
    assert report(job()) is None
    assert report({**job(status="sent"), "letters": []}) is None
    assert report({"object": "print", "id": PRINT_ID}) is None
