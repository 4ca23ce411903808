"""Shared bases of the printers' approval models: the recipient rules a printer enforces before mailing.

Each printer's own model lives in ``printers/<vendor>/approval.py`` and builds on
these.  Input is the recipient's address dict (first_name, last_name, company,
address1, address2, city, state, zip, country, email; anything else ignored).
A recipient failing its printer's model is Skipped with PrinterApprovalFailed
and ``Printer.approval_errors`` stores the errors in
``recipient.json["approval_errors"]``.  Each rule raises a named error type
(``lob_address_length`` ...) so the stored errors are searchable.

Field order matters: validators of later fields read earlier ones from
``info.data`` (company sees the names, address2 sees address1).
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from common.geo import US_STATES, country_normalize

# ASCII classes only, anchored with \Z: ``\d`` also takes Arabic-Indic and other
# Unicode digits, and ``$`` also matches before a trailing newline.
US_ZIP = re.compile(r"\A[0-9]{5}(-[0-9]{4})?\Z")
# Royal Mail format: outward code (A9, A99, AA9, AA99, A9A, AA9A) + inward code (9AA).
UK_POSTCODE = re.compile(r"\A([A-Z]{1,2}[0-9][A-Z0-9]?) ?([0-9][A-Z]{2})\Z")
CA_POSTAL = re.compile(r"\A[ABCEGHJ-NPRSTVXY][0-9][ABCEGHJ-NPRSTV-Z] ?[0-9][ABCEGHJ-NPRSTV-Z][0-9]\Z")
# Characters that break a line (str.splitlines' set beyond the file separators):
# one inside an address field prints as two lines, or is refused by the printer.
LINE_BREAKS = re.compile("[\n\r\u2028\u2029\x0b\x0c\x85]")
# The fields that land on the card's address block.
ADDRESS_FIELDS = ("first_name", "last_name", "company", "address1", "address2", "city", "state", "zip")


def fail(code: str, message: str, **ctx: Any) -> PydanticCustomError:
    """A validation error whose ``type`` is ``code`` (searchable in stored approval errors)."""
    return PydanticCustomError(code, message, ctx or None)


def us_state(value: str) -> bool:
    """True for a real US state, district, territory or military code (upper case)."""
    return value in US_STATES


def full_name(data: dict[str, Any]) -> str:
    return " ".join(p for p in (data.get("first_name", ""), data.get("last_name", "")) if p)


class RecipientApproval(BaseModel):
    """Common shape: stripped strings, None treated as empty, unknown keys ignored."""

    model_config = ConfigDict(str_strip_whitespace=True, extra="ignore", validate_default=True)

    first_name: str = ""
    last_name: str = ""
    company: str = ""
    address1: str = ""
    address2: str = ""
    city: str = ""
    state: str = ""
    zip: str = ""
    country: str = ""
    email: str = ""

    @field_validator("*", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return "" if value is None else value

    @field_validator("country", mode="after")
    @classmethod
    def _normalize_country(cls, value: str) -> str:
        # The project's one country table; an unknown spelling stays as written
        # (upper-cased) so the printer's country rule names it in its error.
        return country_normalize(value) or value.upper()

    @staticmethod
    def required(value: str, field: str) -> str:
        if not value:
            raise fail("missing", "{field} is required", field=field)
        return value


class SingleLineApproval(RecipientApproval):
    """Every address field is one line (Lob, Stannp, Taylor): a line or paragraph
    separator anywhere in it is refused, even at an edge, since the payload carries
    the field as stored.  Subclasses set ``code_prefix`` (error type ``<prefix>_line_break``)."""

    code_prefix: ClassVar[str]

    @field_validator(*ADDRESS_FIELDS, mode="before")
    @classmethod
    def _one_line(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, str) and LINE_BREAKS.search(value):
            raise fail(f"{cls.code_prefix}_line_break", "{field} must be a single line", field=info.field_name)
        return value


class NameOrCompanyApproval(RecipientApproval):
    """A name or a company, plus address1 and city (Stannp, Taylor).

    Subclasses set ``code_prefix``; the name rule's error type is ``<prefix>_name_or_company``."""

    code_prefix: ClassVar[str]

    @field_validator("company", mode="after")
    @classmethod
    def _name_or_company(cls, value: str, info: ValidationInfo) -> str:
        if not value and not full_name(info.data):
            raise fail(f"{cls.code_prefix}_name_or_company", "a name or a company is required")
        return value

    @field_validator("address1", "city", mode="after")
    @classmethod
    def _present(cls, value: str, info: ValidationInfo) -> str:
        return cls.required(value, str(info.field_name))


class UsAddressApproval(RecipientApproval):
    """A US address: a real US state code (upper-cased), a ZIP of 5 or 5+4 ASCII digits, country US (Lob, Taylor).

    Subclasses set ``code_prefix`` (error types ``<prefix>_state``, ``<prefix>_zip``,
    ``<prefix>_country``) and ``label`` (the printer's name in the country error)."""

    code_prefix: ClassVar[str]
    label: ClassVar[str]
    countries: ClassVar[frozenset[str]] = frozenset({"US"})

    @field_validator("state", mode="after")
    @classmethod
    def _us_state(cls, value: str) -> str:
        value = value.upper()
        if not us_state(value):
            raise fail(f"{cls.code_prefix}_state", "state must be a US state code such as CA or NY, got '{v}'", v=value)
        return value

    @field_validator("zip", mode="after")
    @classmethod
    def _us_zip(cls, value: str) -> str:
        if not US_ZIP.match(value):  # anchored with \Z: match is a full match
            raise fail(f"{cls.code_prefix}_zip", "zip must be 5 digits or ZIP+4 (12345-6789), got '{v}'", v=value)
        return value

    @field_validator("country", mode="after")
    @classmethod
    def _us_country(cls, value: str) -> str:
        if value not in cls.countries:
            raise fail(
                f"{cls.code_prefix}_country", "{label} mails to the US only, got '{v}'", label=cls.label, v=value
            )
        return value
