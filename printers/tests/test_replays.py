"""A reused idempotency key means the piece exists (issue 7 item 4), for every printer
with keys, against the simulator: Stannp answers 400, Taylor 422
``idempotency_key_reused``, Lob 200 with the postcard the key made.  The piece is
looked up by our reference; when it cannot be found the error is transient, never
permanent (a permanent one would put the recipient in Error and invite a new key)."""

from __future__ import annotations

import pytest

from printers.base import PrinterError
from printers.registry import get_printer
from printers.simulator import Fault, Simulator
from printers.testing import make_request

KEYED = ["lob", "stannp", "taylor"]
# What each printer answers a changed body under a known key.
REFUSAL = {"lob": None, "stannp": 400, "taylor": 422}


@pytest.mark.parametrize("kind", KEYED)
def test_a_changed_body_under_a_used_key_returns_the_piece_the_key_made(kind: str, simulator: Simulator) -> None:
    printer = get_printer(kind)
    created = printer.submit(make_request())
    again = printer.submit(make_request(front="https://proofs.example/other.png"))
    assert (again.printer_id, again.reference) == (created.printer_id, "pc:7:4242:0")
    assert simulator.physical_pieces(kind) == 1
    # Lob replays the postcard itself; the others refuse, and the piece is looked up.
    looked_up = [r.method for r in simulator.captured(kind)] == ["POST", "POST", "GET"]
    assert looked_up is (REFUSAL[kind] is not None)


@pytest.mark.parametrize("kind", KEYED)
def test_a_used_key_whose_piece_cannot_be_found_is_transient(kind: str, simulator: Simulator) -> None:
    printer = get_printer(kind)
    printer.submit(make_request())
    # The key sent again for another reference: a lookup by that reference finds nothing.
    with pytest.raises(PrinterError, match="already used") as unsettled:
        printer.submit(make_request("pc:7:4243:0", idempotency_key="pc:7:4242:0:key"))
    assert (unsettled.value.permanent, unsettled.value.code) == (False, "idempotency_key_reused")
    assert unsettled.value.status_code == REFUSAL[kind]
    assert simulator.physical_pieces(kind) == 1


@pytest.mark.parametrize("kind", ["stannp", "taylor"])
def test_a_failed_lookup_after_a_used_key_is_transient_too(kind: str, simulator: Simulator) -> None:
    printer = get_printer(kind)
    printer.submit(make_request())
    simulator.inject(kind, Fault.status(401, method="GET"))  # even an answer that is permanent elsewhere
    with pytest.raises(PrinterError) as unsettled:
        printer.submit(make_request(front="https://proofs.example/other.png"))
    assert (unsettled.value.permanent, unsettled.value.code) == (False, "idempotency_key_reused")
