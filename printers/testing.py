"""Test helpers shared by the printers' tests (``printers/<vendor>/tests``, ``printers/tests``).

Not imported by application code.  The ``simulator`` fixture lives in
``printers/conftest.py``; these are the plain helpers the vendor tests build on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from printers.base import Address, SubmitRequest

PRINTERS_DIR = Path(__file__).resolve().parent

# One address per printer's home market, as the vendor tests expect them.
US_ADDRESS = Address(
    name="Ann Lee", address1="185 Berry St", address2="Ste 6100", city="San Francisco", state="CA", zip="94107"
)
UK_ADDRESS = Address(name="Ada Lovelace", address1="14 Grassmarket", city="Edinburgh", zip="EH1 1YZ", country="GB")


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


def fixtures_dir(vendor: str) -> Path:
    """``printers/<vendor>/fixtures``: the vendor's recorded webhook bodies."""
    return PRINTERS_DIR / vendor / "fixtures"


def read_fixture(vendor: str, name: str) -> bytes:
    """The bytes of ``printers/<vendor>/fixtures/<name>`` (``.json`` added when absent)."""
    filename = name if name.endswith(".json") else f"{name}.json"
    return (fixtures_dir(vendor) / filename).read_bytes()
