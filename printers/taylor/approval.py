"""Taylor's approval model (project-defined, see docs/printers/taylor.md)."""

from __future__ import annotations

from typing import ClassVar

from printers.approval import NameOrCompanyApproval, SingleLineApproval, UsAddressApproval

TAYLOR_COUNTRIES = frozenset({"US"})


class TaylorRecipientApproval(SingleLineApproval, NameOrCompanyApproval, UsAddressApproval):
    """US only: name or company, address1, city, a real US state code, ZIP 5 or 5+4; every field one line."""

    code_prefix: ClassVar[str] = "taylor"
    label: ClassVar[str] = "Taylor"
    countries: ClassVar[frozenset[str]] = TAYLOR_COUNTRIES
