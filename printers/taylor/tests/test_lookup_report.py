"""``TaylorPrinter.lookup_report``: what a Taylor mailpiece (``GET /mailpieces?reference=``) says.

The object is our contract's (docs/printers/taylor.md): ``{id, reference, status, created_at}``.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from mailpieces.status import MailpieceStatus as S
from printers.base import Submission
from printers.taylor import TaylorPrinter
from printers.testing import offline

REFERENCE = "pc:7:00004242:0"


def report(status: Any):
    raw = {"id": "tay_000731", "reference": REFERENCE, "status": status, "created_at": "2026-03-02T10:00:00Z"}
    return offline(TaylorPrinter).lookup_report(Submission(printer_id="tay_000731", reference=REFERENCE, raw=raw))


@pytest.mark.parametrize(
    ("code", "status"), [(9, S.PROCESSED), ("10", S.PROCESSED), (11, S.HANDED_OVER), (12, S.DELIVERED), (-1, S.ERROR)]
)
def test_the_numeric_status_is_the_report(code, status):
    event = report(code)
    assert event is not None
    assert (event.vendor_status, event.status, event.occurred_at) == (str(code), status, None)
    assert event.event_id == f"lookup:tay_000731:{code}"


def test_accepted_is_recorded_as_unknown_and_no_status_says_nothing():
    accepted = report(0)
    assert accepted is not None
    assert accepted.status == S.UNKNOWN
    assert report(None) is None
    assert report(True) is None
    assert report(" ") is None


def test_the_deployments_status_map_applies(settings):
    conf = copy.deepcopy(settings.PRINTERS_CONF)  # replaced, never changed in place: the next test sees the default
    conf["taylor"]["status_map"] = {"13": "Returned"}
    settings.PRINTERS_CONF = conf
    event = report(13)
    assert event is not None
    assert event.status == S.RETURNED
