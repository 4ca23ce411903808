"""``StannpPrinter.lookup_report``: what a Stannp mailpiece object says.

The object has the shape of ``/postcards/get/:id`` and the reporting list's
singles (``shared/vendor-examples/stannp/postcard_get_response.json``), with our values.
"""

from __future__ import annotations

from typing import Any

import pytest

from mailpieces.status import MailpieceStatus as S
from printers.base import Submission
from printers.stannp import StannpPrinter
from printers.testing import offline

REFERENCE = "pc:7:00004242:0"


def mailpiece(**changes: Any) -> dict[str, Any]:
    return {
        "id": "52000017",
        "timestamp": "2026-03-02 10:00:04",
        "status": "handed_over",
        "type": "postcard",
        "format": "A6",
        "pdf_file": "https://dash.stannp.com/api/v1/storage/get/port/1772445604/pdfs/52000017.pdf",
        "dispatched": None,
        "country": "GB",
        "cost": "0.61",
        "addons": "",
        "tags": f"{REFERENCE},campaign_id=7,recipient_id=4242",
        "postcode": "EH1 1YZ",
        "address": "14 Grassmarket",
        **changes,
    }


def report(**changes: Any):
    return offline(StannpPrinter).lookup_report(
        Submission(printer_id="52000017", reference=REFERENCE, raw=mailpiece(**changes))
    )


@pytest.mark.parametrize(
    ("vendor_status", "status"),
    [
        ("received", S.RECEIVED),
        ("printing", S.PRODUCING),
        ("handed_over", S.HANDED_OVER),
        ("local_delivery", S.LOCAL_DELIVERY),
        ("delivered", S.DELIVERED),
        ("returned", S.RETURNED),
        ("cancelled", S.CANCELLED),
    ],
)
def test_the_status_field_is_the_report_without_a_time(vendor_status, status):
    event = report(status=vendor_status)
    assert event is not None
    assert (event.vendor_status, event.status, event.occurred_at) == (vendor_status, status, None)
    assert event.event_id == f"lookup:52000017:{vendor_status}"
    assert (event.printer_id, event.reference) == ("52000017", REFERENCE)


def test_an_unmapped_status_is_reported_as_unknown_and_no_status_as_nothing():
    odd = report(status="archived")
    assert odd is not None
    assert odd.status == S.UNKNOWN
    assert report(status=None) is None
    assert report(status="") is None
