"""Test helpers shared by the printers' tests (``printers/<vendor>/tests``, ``printers/tests``).

Not imported by application code.  The ``simulator`` fixture lives in
``printers/conftest.py``; these are the plain helpers the vendor tests build on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from printers.base import Address, Printer, SubmitRequest
from printers.registry import get_printer

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


def fixtures_dir(vendor: str) -> Path:
    """``printers/<vendor>/fixtures``: the vendor's recorded webhook bodies."""
    return PRINTERS_DIR / vendor / "fixtures"


def read_fixture(vendor: str, name: str) -> bytes:
    """The bytes of ``printers/<vendor>/fixtures/<name>`` (``.json`` added when absent)."""
    filename = name if name.endswith(".json") else f"{name}.json"
    return (fixtures_dir(vendor) / filename).read_bytes()
