"""Lob's approval model: the US inline-address rules Lob enforces (vendors.md §1.2)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import ValidationInfo, field_validator

from printers.approval import SingleLineApproval, UsAddressApproval, fail, full_name

LOB_COUNTRIES = frozenset({"US"})


class LobRecipientApproval(SingleLineApproval, UsAddressApproval):
    """Lob US inline address: name or company (<= 40 each), line1 (+line2) <= 50, each line <= 64,
    city, a real US state code, ZIP 5 or 5+4, country US (vendors.md §1.2); every field one line."""

    code_prefix: ClassVar[str] = "lob"
    label: ClassVar[str] = "Lob"
    countries: ClassVar[frozenset[str]] = LOB_COUNTRIES

    @field_validator("last_name", mode="after")
    @classmethod
    def _name_length(cls, value: str, info: ValidationInfo) -> str:
        name = full_name({**info.data, "last_name": value})
        if len(name) > 40:
            raise fail("lob_name_too_long", "name (first + last) must be at most 40 characters, got {n}", n=len(name))
        return value

    @field_validator("company", mode="after")
    @classmethod
    def _company(cls, value: str, info: ValidationInfo) -> str:
        if len(value) > 40:
            raise fail("lob_company_too_long", "company must be at most 40 characters, got {n}", n=len(value))
        if not value and "last_name" in info.data and not full_name(info.data):
            raise fail("lob_name_or_company", "a name or a company is required")
        return value

    @field_validator("address1", "address2", mode="after")
    @classmethod
    def _address_lines(cls, value: str, info: ValidationInfo) -> str:
        if info.field_name == "address1":
            cls.required(value, "address1")
        if len(value) > 64:
            raise fail("lob_line_too_long", "each address line must be at most 64 characters, got {n}", n=len(value))
        if info.field_name == "address2" and "address1" in info.data:
            total = len(info.data["address1"]) + len(value)
            if total > 50:
                raise fail(
                    "lob_address_length", "address1 + address2 must be at most 50 characters together, got {n}", n=total
                )
        return value

    @field_validator("city", mode="after")
    @classmethod
    def _city(cls, value: str) -> str:
        return cls.required(value, "city")
