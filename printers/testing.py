"""Test helpers shared by the printers' tests (``printers/<vendor>/tests``, ``printers/tests``).

Not imported by application code.  The ``simulator`` fixture lives in
``printers/conftest.py``; these are the plain helpers the vendor tests build on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import pytest

from printers.base import Address, Printer, PrinterError, SubmitRequest
from printers.registry import get_printer, printer_conf
from printers.simulator import Fault, Simulator

_P = TypeVar("_P", bound=Printer)

PRINTERS_DIR = Path(__file__).resolve().parent

# One address per printer's home market, as the vendor tests expect them.
US_ADDRESS = Address(
    name="Ann Lee", address1="185 Berry St", address2="Ste 6100", city="San Francisco", state="CA", zip="94107"
)
UK_ADDRESS = Address(name="Ada Lovelace", address1="14 Grassmarket", city="Edinburgh", zip="EH1 1YZ", country="GB")
# US_ADDRESS as the recipient data approval reads (``recipient.json``'s fields: a
# first and last name instead of ``name``), for the approval tests of every printer.
US_RECIPIENT: dict[str, str] = {
    "first_name": "Ann",
    "last_name": "Lee",
    "company": US_ADDRESS.company,
    "address1": US_ADDRESS.address1,
    "address2": US_ADDRESS.address2,
    "city": US_ADDRESS.city,
    "state": US_ADDRESS.state,
    "zip": US_ADDRESS.zip,
    "country": US_ADDRESS.country,
    "email": "ann@example.com",
}


def make_request(reference: str = "pc:7:4242:0", **changes: Any) -> SubmitRequest:
    """A submission for ``reference`` (``pc:<campaign>:<recipient>:<gen>``): its idempotency
    key and metadata follow from the reference; ``changes`` replace any field."""
    parts = reference.split(":")
    campaign_id, recipient_id = (parts[1], parts[2]) if len(parts) == 4 else ("7", "4242")
    values: dict[str, Any] = {
        "reference": reference,
        "idempotency_key": f"{reference}:key",
        "to": US_ADDRESS,
        "front": "https://proofs.example/front.png",
        "back": "https://proofs.example/back.png",
        "metadata": {"recipient_id": recipient_id, "campaign_id": campaign_id},
    }
    return SubmitRequest(**{**values, **changes})


def configured(cls: type[_P]) -> _P:
    """``cls`` as the registry builds it from the settings (the ``simulator`` fixture
    points those at the local simulator), typed as that printer."""
    printer = get_printer(cls.kind)
    assert isinstance(printer, cls), f"the registry builds {type(printer).__name__} for {cls.kind!r}"
    return printer


def offline(cls: type[_P], **conf: Any) -> _P:
    """``cls`` built from its test settings with ``conf`` laid over them, for the
    tests that never call the printer (webhook parsing, signatures)."""
    return cls({**printer_conf(cls.kind), **conf})


def assert_a_lost_create_replays_to_its_piece(simulator: Simulator, printer: Printer, request: SubmitRequest) -> None:
    """The printer makes the piece but its answer never arrives (a timeout):
    the error is transient, and submitting again under the same key returns
    the piece already made.  One piece prints, never two."""
    kind = printer.kind
    simulator.inject(kind, Fault.timeout_after_create(hang_s=1.0, method="POST"))
    with pytest.raises(PrinterError) as lost:
        printer.submit(request)
    assert lost.value.permanent is False
    assert simulator.physical_pieces(kind, request.idempotency_key) == 1  # made; the client never heard
    assert printer.submit(request).printer_id == simulator.pieces(kind)[0].id
    assert simulator.physical_pieces(kind, request.idempotency_key) == 1


def assert_lookup_finds(printer: Printer, reference: str, printer_id: str) -> None:
    """``lookup`` finds the piece ``printer_id`` under ``reference``, and nothing
    under a reference no test submits."""
    found = printer.lookup(reference)
    assert found is not None
    assert found.printer_id == printer_id
    assert printer.lookup("pc:7:999999:0") is None


def fixtures_dir(vendor: str) -> Path:
    """``printers/<vendor>/fixtures``: the vendor's recorded webhook bodies."""
    return PRINTERS_DIR / vendor / "fixtures"


def read_fixture(vendor: str, name: str) -> bytes:
    """The bytes of ``printers/<vendor>/fixtures/<name>`` (``.json`` added when absent)."""
    filename = name if name.endswith(".json") else f"{name}.json"
    return (fixtures_dir(vendor) / filename).read_bytes()
