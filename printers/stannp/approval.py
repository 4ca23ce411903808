"""Stannp's approval model: a postcode valid for each of its countries (vendors.md §2.1)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import ValidationInfo, field_validator

from printers.approval import CA_POSTAL, UK_POSTCODE, US_ZIP, NameOrCompanyApproval, SingleLineApproval, fail, us_state

STANNP_COUNTRIES = frozenset({"GB", "US", "CA"})


class StannpRecipientApproval(SingleLineApproval, NameOrCompanyApproval):
    """Stannp UK/US/CA: name or company, address1, city, and a postcode valid for the
    country (UK postcode, US ZIP + a real US state code, CA postal code) (vendors.md §2.1);
    every field one line."""

    code_prefix: ClassVar[str] = "stannp"

    @field_validator("country", mode="after")
    @classmethod
    def _country(cls, value: str, info: ValidationInfo) -> str:
        if value not in STANNP_COUNTRIES:
            raise fail("stannp_country", "Stannp mails to GB, US or CA, got '{v}'", v=value)
        postcode, state = info.data.get("zip", "").upper(), info.data.get("state", "").upper()
        if value == "GB" and not UK_POSTCODE.match(postcode):
            raise fail("stannp_postcode", "a valid UK postcode is required, got '{v}'", v=postcode)
        if value == "US" and not (US_ZIP.match(postcode) and us_state(state)):
            raise fail("stannp_us_address", "US addresses need a US state code such as CA and a 5 or 5+4 digit ZIP")
        if value == "CA" and not CA_POSTAL.match(postcode):
            raise fail("stannp_postcode", "a valid Canadian postal code is required, got '{v}'", v=postcode)
        return value
