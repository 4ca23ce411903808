"""IntelliPrint's approval model: UK (Royal Mail) addresses sent as one line (vendors.md §3.1).

The rules are checked on what the payload carries: the name and line come from
:func:`~printers.intelliprint.address.intelliprint_address`, the one builder the client uses too.
"""

from __future__ import annotations

from pydantic import ValidationInfo, field_validator

from printers.approval import RecipientApproval, fail, full_name
from printers.intelliprint.address import (
    LINE_MAX,
    has_line_break,
    intelliprint_address,
    intelliprint_postcode,
)

INTELLIPRINT_COUNTRIES = frozenset({"GB"})


class IntelliprintRecipientApproval(RecipientApproval):
    """IntelliPrint UK (Royal Mail): a name; the address line as sent (company, address1,
    address2, city joined by ", ") must be <= 150 characters; no part of the name or line may
    hold a line break of any kind; a valid UK postcode; country GB (vendors.md §3.1)."""

    @field_validator("last_name", mode="after")
    @classmethod
    def _name(cls, value: str, info: ValidationInfo) -> str:
        if not full_name({**info.data, "last_name": value}):
            raise fail("intelliprint_name", "a first or last name is required")
        return value

    @field_validator("first_name", "last_name", "company", "address1", "address2", "city", mode="after")
    @classmethod
    def _single_line(cls, value: str, info: ValidationInfo) -> str:
        # ``value`` is trimmed exactly as the builder trims it: what is checked is what is sent.
        if has_line_break(value):
            raise fail("intelliprint_line_break", "{field} must not contain line breaks", field=info.field_name)
        if info.field_name == "address1":
            cls.required(value, "address1")
        if info.field_name == "city":
            cls._line_fits({**info.data, "city": value})
        return value

    @staticmethod
    def _line_fits(data: dict[str, str]) -> None:
        # City is the last part of the line, so every earlier part that passed is in ``data``.
        address = intelliprint_address(
            name=full_name(data),
            company=data.get("company", ""),
            address1=data.get("address1", ""),
            address2=data.get("address2", ""),
            city=data.get("city", ""),
            postcode="",
            country="",
        )
        if len(address.line) > LINE_MAX:
            raise fail(
                "intelliprint_line_too_long",
                "the address line must be <= {max} characters, got {n}",
                max=LINE_MAX,
                n=len(address.line),
            )

    @field_validator("zip", mode="after")
    @classmethod
    def _postcode(cls, value: str) -> str:
        postcode = intelliprint_postcode(value)
        if postcode is None:
            raise fail("intelliprint_postcode", "zip must be a UK postcode (e.g. SW1A 1AA), got '{v}'", v=value)
        return postcode

    @field_validator("country", mode="after")
    @classmethod
    def _country(cls, value: str) -> str:
        if value not in INTELLIPRINT_COUNTRIES:
            raise fail("intelliprint_country", "IntelliPrint mails to GB only, got '{v}'", v=value)
        return value
