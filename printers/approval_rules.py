"""Per-printer approval models: the recipient rules a printer enforces before mailing.

Input is the recipient's address dict (first_name, last_name, company,
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

US_ZIP = re.compile(r"^\d{5}(-\d{4})?$")
US_STATE = re.compile(r"^[A-Z]{2}$")
# Royal Mail format: outward code (A9, A99, AA9, AA99, A9A, AA9A) + inward code (9AA).
UK_POSTCODE = re.compile(r"^([A-Z]{1,2}\d[A-Z\d]?) ?(\d[A-Z]{2})$")
CA_POSTAL = re.compile(r"^[ABCEGHJ-NPRSTVXY]\d[ABCEGHJ-NPRSTV-Z] ?\d[ABCEGHJ-NPRSTV-Z]\d$")
COUNTRY_ALIASES = {"USA": "US", "UK": "GB", "GBR": "GB", "CAN": "CA"}

LOB_COUNTRIES = frozenset({"US"})
INTELLIPRINT_COUNTRIES = frozenset({"GB"})
STANNP_COUNTRIES = frozenset({"GB", "US", "CA"})
TAYLOR_COUNTRIES = frozenset({"US"})


def _fail(code: str, message: str, **ctx: Any) -> PydanticCustomError:
    return PydanticCustomError(code, message, ctx or None)


def _full_name(data: dict[str, Any]) -> str:
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
        upper = value.upper()
        return COUNTRY_ALIASES.get(upper, upper)

    @staticmethod
    def required(value: str, field: str) -> str:
        if not value:
            raise _fail("missing", "{field} is required", field=field)
        return value


class SandboxRecipientApproval(RecipientApproval):
    """Lenient: the local simulator mails anything with an address line, a zip and a country."""

    @field_validator("address1", "zip", "country", mode="after")
    @classmethod
    def _present(cls, value: str, info: ValidationInfo) -> str:
        return cls.required(value, str(info.field_name))


class LobRecipientApproval(RecipientApproval):
    """Lob US inline address: name or company (<= 40 each), line1 (+line2) <= 50, each line <= 64,
    city, 2-letter state, ZIP 5 or 5+4, country US (vendors.md §1.2)."""

    @field_validator("last_name", mode="after")
    @classmethod
    def _name_length(cls, value: str, info: ValidationInfo) -> str:
        name = _full_name({**info.data, "last_name": value})
        if len(name) > 40:
            raise _fail("lob_name_too_long", "name (first + last) must be at most 40 characters, got {n}", n=len(name))
        return value

    @field_validator("company", mode="after")
    @classmethod
    def _company(cls, value: str, info: ValidationInfo) -> str:
        if len(value) > 40:
            raise _fail("lob_company_too_long", "company must be at most 40 characters, got {n}", n=len(value))
        if not value and "last_name" in info.data and not _full_name(info.data):
            raise _fail("lob_name_or_company", "a name or a company is required")
        return value

    @field_validator("address1", "address2", mode="after")
    @classmethod
    def _address_lines(cls, value: str, info: ValidationInfo) -> str:
        if info.field_name == "address1":
            cls.required(value, "address1")
        if len(value) > 64:
            raise _fail("lob_line_too_long", "each address line must be at most 64 characters, got {n}", n=len(value))
        if info.field_name == "address2" and "address1" in info.data:
            total = len(info.data["address1"]) + len(value)
            if total > 50:
                raise _fail(
                    "lob_address_length", "address1 + address2 must be at most 50 characters together, got {n}", n=total
                )
        return value

    @field_validator("city", mode="after")
    @classmethod
    def _city(cls, value: str) -> str:
        return cls.required(value, "city")

    @field_validator("state", mode="after")
    @classmethod
    def _state(cls, value: str) -> str:
        value = value.upper()
        if not US_STATE.match(value):
            raise _fail("lob_state", "state must be a 2-letter US state code, got '{v}'", v=value)
        return value

    @field_validator("zip", mode="after")
    @classmethod
    def _zip(cls, value: str) -> str:
        if not US_ZIP.match(value):
            raise _fail("lob_zip", "zip must be 5 digits or ZIP+4 (12345-6789), got '{v}'", v=value)
        return value

    @field_validator("country", mode="after")
    @classmethod
    def _country(cls, value: str) -> str:
        if value not in LOB_COUNTRIES:
            raise _fail("lob_country", "Lob mails to the US only here, got '{v}'", v=value)
        return value


class IntelliprintRecipientApproval(RecipientApproval):
    """IntelliPrint UK (Royal Mail): a name; the address is sent as ONE line (address1,
    address2, city joined by ", ") that must be <= 150 characters without line breaks;
    a valid UK postcode; country GB (vendors.md §3.1)."""

    @field_validator("last_name", mode="after")
    @classmethod
    def _name(cls, value: str, info: ValidationInfo) -> str:
        if not _full_name({**info.data, "last_name": value}):
            raise _fail("intelliprint_name", "a first or last name is required")
        return value

    @field_validator("address1", "address2", "city", mode="after")
    @classmethod
    def _single_line(cls, value: str, info: ValidationInfo) -> str:
        if "\n" in value or "\r" in value:
            raise _fail("intelliprint_line_break", "{field} must not contain line breaks", field=info.field_name)
        if info.field_name == "address1":
            cls.required(value, "address1")
        if info.field_name == "city":
            line = ", ".join(p for p in (info.data.get("address1", ""), info.data.get("address2", ""), value) if p)
            if len(line) > 150:
                raise _fail(
                    "intelliprint_line_too_long", "the address line must be <= 150 characters, got {n}", n=len(line)
                )
        return value

    @field_validator("zip", mode="after")
    @classmethod
    def _postcode(cls, value: str) -> str:
        match = UK_POSTCODE.match(value.upper())
        if not match:
            raise _fail("intelliprint_postcode", "zip must be a UK postcode (e.g. SW1A 1AA), got '{v}'", v=value)
        return f"{match.group(1)} {match.group(2)}"

    @field_validator("country", mode="after")
    @classmethod
    def _country(cls, value: str) -> str:
        if value not in INTELLIPRINT_COUNTRIES:
            raise _fail("intelliprint_country", "IntelliPrint mails to GB only, got '{v}'", v=value)
        return value


class NameOrCompanyApproval(RecipientApproval):
    """Shared by Stannp and Taylor: a name or a company, plus address1 and city.

    Subclasses set ``code_prefix``; the name rule's error type is ``<prefix>_name_or_company``."""

    code_prefix: ClassVar[str]

    @field_validator("company", mode="after")
    @classmethod
    def _name_or_company(cls, value: str, info: ValidationInfo) -> str:
        if not value and not _full_name(info.data):
            raise _fail(f"{cls.code_prefix}_name_or_company", "a name or a company is required")
        return value

    @field_validator("address1", "city", mode="after")
    @classmethod
    def _present(cls, value: str, info: ValidationInfo) -> str:
        return cls.required(value, str(info.field_name))


class StannpRecipientApproval(NameOrCompanyApproval):
    """Stannp UK/US/CA: name or company, address1, city, and a postcode valid for the
    country (UK postcode, US ZIP + 2-letter state, CA postal code) (vendors.md §2.1)."""

    code_prefix = "stannp"

    @field_validator("country", mode="after")
    @classmethod
    def _country(cls, value: str, info: ValidationInfo) -> str:
        if value not in STANNP_COUNTRIES:
            raise _fail("stannp_country", "Stannp mails to GB, US or CA, got '{v}'", v=value)
        postcode, state = info.data.get("zip", "").upper(), info.data.get("state", "").upper()
        if value == "GB" and not UK_POSTCODE.match(postcode):
            raise _fail("stannp_postcode", "a valid UK postcode is required, got '{v}'", v=postcode)
        if value == "US" and not (US_ZIP.match(postcode) and US_STATE.match(state)):
            raise _fail("stannp_us_address", "US addresses need a 2-letter state and a 5 or 5+4 digit ZIP")
        if value == "CA" and not CA_POSTAL.match(postcode):
            raise _fail("stannp_postcode", "a valid Canadian postal code is required, got '{v}'", v=postcode)
        return value


class TaylorRecipientApproval(NameOrCompanyApproval):
    """Taylor (project-defined, see docs/printers/taylor.md): US only; name or company,
    address1, city, 2-letter state, ZIP 5 or 5+4."""

    code_prefix = "taylor"

    @field_validator("state", mode="after")
    @classmethod
    def _state(cls, value: str) -> str:
        if not US_STATE.match(value.upper()):
            raise _fail("taylor_state", "state must be a 2-letter US state code, got '{v}'", v=value)
        return value.upper()

    @field_validator("zip", mode="after")
    @classmethod
    def _zip(cls, value: str) -> str:
        if not US_ZIP.match(value):
            raise _fail("taylor_zip", "zip must be 5 digits or ZIP+4, got '{v}'", v=value)
        return value

    @field_validator("country", mode="after")
    @classmethod
    def _country(cls, value: str) -> str:
        if value not in TAYLOR_COUNTRIES:
            raise _fail("taylor_country", "Taylor mails to the US only, got '{v}'", v=value)
        return value
