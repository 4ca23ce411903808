"""``LobPrinter.lookup_report``: what a postcard object (``GET /v1/postcards``) says.

The objects have the shape of Lob's OpenAPI ``postcard`` (``shared/vendor-examples/lob``:
``postcard_response_full.json``, ``tracking_event_normal.json``), with our values.
"""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

from mailpieces.status import MailpieceStatus as S
from printers.base import Submission
from printers.lob import LobPrinter
from printers.testing import offline

PSC = "psc_5c002b86ce47537a"
REFERENCE = "pc:7:00004242:0"


def scan(name: str, time: str, location: str | None = "94107") -> dict[str, Any]:
    return {
        "id": "evnt_" + "".join(c for c in time if c.isdigit())[:15],
        "type": "normal",
        "name": name,
        "details": None,
        "location": None if name == "Mailed" else location,
        "time": time,
        "date_created": time,
        "date_modified": time,
        "object": "tracking_event",
    }


POSTCARD: dict[str, Any] = {
    "id": PSC,
    "description": REFERENCE,
    "metadata": {"reference": REFERENCE, "recipient_id": "4242", "campaign_id": "7"},
    "to": {
        "id": "adr_a17f2b1c98ed3",
        "name": "ANN LEE",
        "address_line1": "185 BERRY ST STE 6100",
        "address_city": "SAN FRANCISCO",
        "address_state": "CA",
        "address_zip": "94107-1741",
        "address_country": "UNITED STATES",
        "object": "address",
    },
    "url": f"https://lob-assets.com/postcards/{PSC}.pdf?version=v1&expires=1800000000&signature=abc",
    "carrier": "USPS",
    "tracking_events": [],
    "size": "4x6",
    "mail_type": "usps_first_class",
    "expected_delivery_date": "2026-03-09",
    "date_created": "2026-03-02T10:00:00.000Z",
    "date_modified": "2026-03-02T10:05:00.000Z",
    "send_date": "2026-03-02T10:05:00.000Z",
    "use_type": "marketing",
    "status": "rendered",
    "failure_reason": None,
    "object": "postcard",
}


def report(**changes: Any):
    raw = {**copy.deepcopy(POSTCARD), **changes}
    return offline(LobPrinter).lookup_report(Submission(printer_id=PSC, reference=REFERENCE, raw=raw))


def test_the_furthest_scan_is_the_report_at_the_scans_time():
    event = report(
        tracking_events=[
            scan("In Transit", "2026-03-04T08:12:00.000Z", "94621"),
            scan("In Local Area", "2026-03-05T06:30:00.000Z"),
            scan("Delivered", "2026-03-06T15:51:41.000Z"),
        ]
    )
    assert event is not None
    assert (event.vendor_status, event.status) == ("postcard.delivered", S.DELIVERED)
    assert event.occurred_at == dt.datetime(2026, 3, 6, 15, 51, 41, tzinfo=dt.UTC)
    assert event.event_id == f"lookup:{PSC}:postcard.delivered:{int(event.occurred_at.timestamp())}"
    assert (event.printer_id, event.reference) == (PSC, REFERENCE)


def test_a_late_re_route_does_not_hide_a_further_scan():
    event = report(
        tracking_events=[
            scan("In Local Area", "2026-03-05T06:30:00.000Z"),
            scan("Processed for Delivery", "2026-03-05T09:00:00.000Z"),
            scan("Re-Routed", "2026-03-05T11:00:00.000Z"),
        ]
    )
    assert event is not None
    assert (event.vendor_status, event.status) == ("postcard.processed_for_delivery", S.LOCAL_DELIVERY)


def test_returned_to_sender_after_delivery_is_the_report():
    event = report(
        tracking_events=[
            scan("Delivered", "2026-03-06T15:51:41.000Z"),
            scan("Returned to Sender", "2026-03-12T10:00:00.000Z"),
        ]
    )
    assert event is not None
    assert event.status == S.RETURNED


def test_the_same_answer_gives_the_same_event_id():
    scans = [scan("In Transit", "2026-03-04T08:12:00.000Z")]
    first, second = report(tracking_events=scans), report(tracking_events=copy.deepcopy(scans))
    assert first is not None
    assert second is not None
    assert first.event_id == second.event_id


def test_without_scans_the_render_status_is_the_report_without_a_time():
    rendered = report()
    assert rendered is not None
    assert (rendered.vendor_status, rendered.status, rendered.occurred_at) == (
        "postcard.rendered_pdf",
        S.PRODUCING,
        None,
    )
    assert rendered.event_id == f"lookup:{PSC}:postcard.rendered_pdf"
    processing = report(status="processed", tracking_events=None)  # nullable in the spec
    assert processing is not None
    assert (processing.vendor_status, processing.status) == ("postcard.created", S.PRODUCING)
    failed = report(status="failed", failure_reason={"failure_reason": "invalid_file", "remediation": "…"})
    assert failed is not None
    assert (failed.vendor_status, failed.status) == ("postcard.failed", S.ERROR)


def test_a_deleted_postcard_is_cancelled():
    event = report(deleted=True)
    assert event is not None
    assert (event.vendor_status, event.status) == ("postcard.deleted", S.CANCELLED)


def test_odd_scans_are_skipped_and_an_unknown_render_status_says_nothing():
    event = report(
        tracking_events=["not a scan", {"name": "Teleported", "time": "2026-03-04T08:12:00Z"}, scan("Mailed", "bad")]
    )
    assert event is not None
    assert (event.vendor_status, event.occurred_at) == ("postcard.mailed", None)
    assert report(status="", tracking_events=[]) is None
