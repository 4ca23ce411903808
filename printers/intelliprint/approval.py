"""IntelliPrint's approval model: UK (Royal Mail) addresses sent as one line (vendors.md §3.1)."""

from __future__ import annotations

from pydantic import ValidationInfo, field_validator

from printers.approval import UK_POSTCODE, RecipientApproval, fail, full_name

INTELLIPRINT_COUNTRIES = frozenset({"GB"})


class IntelliprintRecipientApproval(RecipientApproval):
    """IntelliPrint UK (Royal Mail): a name; the address is sent as ONE line (address1,
    address2, city joined by ", ") that must be <= 150 characters without line breaks;
    a valid UK postcode; country GB (vendors.md §3.1)."""

    @field_validator("last_name", mode="after")
    @classmethod
    def _name(cls, value: str, info: ValidationInfo) -> str:
        if not full_name({**info.data, "last_name": value}):
            raise fail("intelliprint_name", "a first or last name is required")
        return value

    @field_validator("address1", "address2", "city", mode="after")
    @classmethod
    def _single_line(cls, value: str, info: ValidationInfo) -> str:
        if "\n" in value or "\r" in value:
            raise fail("intelliprint_line_break", "{field} must not contain line breaks", field=info.field_name)
        if info.field_name == "address1":
            cls.required(value, "address1")
        if info.field_name == "city":
            line = ", ".join(p for p in (info.data.get("address1", ""), info.data.get("address2", ""), value) if p)
            if len(line) > 150:
                raise fail(
                    "intelliprint_line_too_long", "the address line must be <= 150 characters, got {n}", n=len(line)
                )
        return value

    @field_validator("zip", mode="after")
    @classmethod
    def _postcode(cls, value: str) -> str:
        match = UK_POSTCODE.match(value.upper())
        if not match:
            raise fail("intelliprint_postcode", "zip must be a UK postcode (e.g. SW1A 1AA), got '{v}'", v=value)
        return f"{match.group(1)} {match.group(2)}"

    @field_validator("country", mode="after")
    @classmethod
    def _country(cls, value: str) -> str:
        if value not in INTELLIPRINT_COUNTRIES:
            raise fail("intelliprint_country", "IntelliPrint mails to GB only, got '{v}'", v=value)
        return value
