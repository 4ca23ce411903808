"""Taylor's approval model (project-defined, see docs/printers/taylor.md)."""

from __future__ import annotations

from typing import ClassVar

from printers.approval import NameOrCompanyApproval, UsAddressApproval

TAYLOR_COUNTRIES = frozenset({"US"})


class TaylorRecipientApproval(NameOrCompanyApproval, UsAddressApproval):
    """US only: name or company, address1, city, 2-letter state, ZIP 5 or 5+4."""

    code_prefix: ClassVar[str] = "taylor"
    label: ClassVar[str] = "Taylor"
    countries: ClassVar[frozenset[str]] = TAYLOR_COUNTRIES
