"""The sandbox's approval model: lenient, so a fresh install can mail almost anything."""

from __future__ import annotations

from pydantic import ValidationInfo, field_validator

from printers.approval import RecipientApproval

SANDBOX_COUNTRIES = frozenset({"US", "GB", "CA"})


class SandboxRecipientApproval(RecipientApproval):
    """The local simulator mails anything with an address line, a zip and a country."""

    @field_validator("address1", "zip", "country", mode="after")
    @classmethod
    def _present(cls, value: str, info: ValidationInfo) -> str:
        return cls.required(value, str(info.field_name))
