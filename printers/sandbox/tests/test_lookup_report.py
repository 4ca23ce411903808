"""``SandboxPrinter.lookup_report``: what a sandbox piece (``GET /pieces?reference=``) says.

The piece is docs/printers/sandbox.md's: ``{id, reference, status, metadata, size,
mail_date, test, created_at}``; its status is a MailpieceStatus value.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from mailpieces.status import MailpieceStatus as S
from printers.base import Submission
from printers.sandbox import SandboxPrinter
from printers.testing import offline

REFERENCE = "pc:7:00004242:0"


def report(**changes: Any):
    raw = {
        "id": "sbx_00000042a1b2c3",
        "reference": REFERENCE,
        "status": "InTransit",
        "metadata": {"recipient_id": "4242", "campaign_id": "7"},
        "size": "4x6",
        "mail_date": None,
        "test": False,
        "created_at": "2026-03-02T10:00:00+00:00",
        **changes,
    }
    return offline(SandboxPrinter).lookup_report(Submission(printer_id="sbx_00000042a1b2c3", raw=raw))


def test_the_status_is_the_report_and_created_at_is_not_its_time():
    event = report()
    assert event is not None
    assert (event.vendor_status, event.status, event.occurred_at) == ("InTransit", S.IN_TRANSIT, None)
    assert event.event_id == "lookup:sbx_00000042a1b2c3:InTransit"
    assert event.reference == REFERENCE


def test_an_occurred_at_is_read_when_the_piece_has_one():
    event = report(status="Delivered", occurred_at="2026-03-06T15:51:41Z")
    assert event is not None
    assert event.occurred_at == dt.datetime(2026, 3, 6, 15, 51, 41, tzinfo=dt.UTC)
    assert event.event_id == f"lookup:sbx_00000042a1b2c3:Delivered:{int(event.occurred_at.timestamp())}"
    assert report(occurred_at="yesterday").occurred_at is None


def test_an_unknown_status_is_unknown_and_no_status_says_nothing():
    odd = report(status="Teleported")
    assert odd is not None
    assert odd.status == S.UNKNOWN
    assert report(status="") is None
    assert report(status=None) is None
