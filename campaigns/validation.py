"""Recipient data validation (spec 000, "Data Validation (sync time)").

``RecipientDataValidator`` is the spec's pydantic model: whitespace stripped on
every string, ``address1``/``zip``/``country`` required and non-empty, at
least one of ``first_name``/``last_name``, no asterisks in names.
``recipient_validate`` wraps it with the two checks that need the campaign
(the printer's countries and address enrichment) and turns every failure into
plain words and a skip reason.  The natural key and the blocklist key live here
too, because both are defined by the same normalisation.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from campaigns.enums import CampaignRecipientSkipReason as SkipReason
from common.geo import country_normalize

# Columns of CampaignRecipient an import may fill, with the model's max lengths:
# a longer value is a validation error, never a truncation or a database error.
RECIPIENT_FIELDS: dict[str, int] = {
    "external_id": 200,
    "first_name": 200,
    "last_name": 200,
    "company": 200,
    "address1": 200,
    "address2": 200,
    "city": 100,
    "state": 100,
    "zip": 20,
    "country": 100,
    "email": 254,
}
ADDRESS_FIELDS = frozenset({"address1", "address2", "city", "state", "zip"})
# Characters no database column can hold: PostgreSQL refuses NUL in text and
# jsonb (SQLite takes it, so only production would fail), and a lone surrogate
# cannot be encoded as UTF-8 by either driver.
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable(value: str) -> str:
    """``value`` with every unstorable character written out as an escape
    (``\\x00``, ``\\udc80``): what was received stays readable in json."""
    if not UNSTORABLE.search(value):
        return value
    return UNSTORABLE.sub(
        lambda m: f"\\x{ord(m.group()):02x}" if m.group() == "\x00" else f"\\u{ord(m.group()):04x}",
        value,
    )


def text_normalize(value: str) -> str:
    """NFKC, casefolded, whitespace collapsed: the form keys are built from."""
    return " ".join(unicodedata.normalize("NFKC", value).casefold().split())


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


def natural_key(data: Mapping[str, str]) -> str:
    """64 hex chars identifying a recipient inside its campaign.

    The source's external id when there is one, else the normalised first
    name, last name, address1, zip and country.  Both are hashed so the key
    has a fixed length and no PII shows in indexes or logs.
    """
    external_id = data.get("external_id", "")
    if external_id:
        return _digest("id", external_id.strip())
    country = data.get("country", "")
    return _digest(
        "addr",
        *(text_normalize(data.get(f, "")) for f in ("first_name", "last_name", "address1", "zip")),
        country_normalize(country) or text_normalize(country),
    )


_ADDRESS_WORDS = {
    "street": "st",
    "avenue": "ave",
    "road": "rd",
    "drive": "dr",
    "boulevard": "blvd",
    "lane": "ln",
    "court": "ct",
    "place": "pl",
    "apartment": "apt",
    "suite": "ste",
    "north": "n",
    "south": "s",
    "east": "e",
    "west": "w",
}


def _address_normalize(value: str) -> str:
    words = re.sub(r"[.,#;:'\"]", " ", text_normalize(value)).split()
    return " ".join(_ADDRESS_WORDS.get(w, w) for w in words)


def _zip_normalize(value: str, country: str) -> str:
    squashed = re.sub(r"[\s-]", "", value).upper()
    # ZIP+4 and ZIP name the same mailbox for the blocklist.
    return squashed[:5] if country == "US" else squashed


def blocklist_address_key(*, address1: str, zip: str, country: str) -> str:
    """Blocklist key of a postal address: address1 casefolded, punctuation
    dropped, common street words abbreviated ("Street" = "St."), the zip without
    spaces or dashes (US: first five digits) and the alpha-2 country (empty
    country counts as US, the usual case of a file without a country column)."""
    iso = country_normalize(country) or ("US" if not country.strip() else text_normalize(country))
    return _digest("block-addr", _address_normalize(address1), _zip_normalize(zip, iso), iso)


def blocklist_email_key(email: str) -> str:
    return _digest("block-email", email.strip().casefold())


def blocklist_entry_key(*, address1: str = "", zip: str = "", country: str = "", email: str = "") -> str:
    """The ``BlocklistEntry.key`` to store: the email key when the entry names an
    email, else the address key."""
    if email.strip():
        return blocklist_email_key(email)
    return blocklist_address_key(address1=address1, zip=zip, country=country)


class RecipientDataValidator(BaseModel):
    """The spec's sync-time validator; field names are CampaignRecipient's."""

    model_config = ConfigDict(str_strip_whitespace=True, extra="ignore", coerce_numbers_to_str=True)

    external_id: str = Field(default="", max_length=200)
    first_name: str = Field(default="", max_length=200)
    last_name: str = Field(default="", max_length=200)
    company: str = Field(default="", max_length=200)
    address1: str = Field(min_length=1, max_length=200)
    address2: str = Field(default="", max_length=200)
    city: str = Field(default="", max_length=100)
    state: str = Field(default="", max_length=100)
    zip: str = Field(min_length=1, max_length=20)
    country: str = Field(min_length=1, max_length=100)
    email: str = Field(default="", max_length=254)

    @field_validator("*", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        if isinstance(value, str) and UNSTORABLE.search(value):
            raise ValueError("contains a NUL byte or an invalid character")
        return "" if value is None else value

    @field_validator("first_name", "last_name")
    @classmethod
    def _no_asterisks(cls, value: str) -> str:
        if "*" in value:
            raise ValueError("contains an asterisk")
        return value

    @field_validator("country")
    @classmethod
    def _known_country(cls, value: str) -> str:
        iso = country_normalize(value)
        if iso is None:
            raise ValueError(f"{value!r} is not a recognised country")
        return iso

    @model_validator(mode="after")
    def _has_a_name(self) -> RecipientDataValidator:
        if not self.first_name and not self.last_name:
            raise ValueError("first_name and last_name are both empty")
        return self


@dataclass(slots=True)
class ValidatedRow:
    """A row ready to store: the cleaned fields, and (when it failed) the skip
    reason and the errors in plain words."""

    data: dict[str, str]
    natural_key: str
    skip_reason: str = ""
    errors: list[dict[str, str]] = field(default_factory=list)


def _describe(err: Mapping[str, Any]) -> tuple[str, str]:
    loc = err.get("loc") or ()
    # The only model-level rule is the name rule.
    name = str(loc[0]) if loc else "name"
    kind = err.get("type", "")
    if kind == "missing" or (kind == "string_too_short" and err.get("ctx", {}).get("min_length") == 1):
        return name, f"{name} is empty"
    if kind == "string_too_long":
        return name, f"{name} is longer than {err['ctx']['max_length']} characters"
    if kind in ("string_type", "model_attributes_type"):
        return name, f"{name} is not text"
    message = str(err.get("msg", "is invalid")).removeprefix("Value error, ")
    return name, message if not loc else f"{name} {message}"


def _clean(raw: Mapping[str, Any]) -> dict[str, str]:
    """Best-effort stripped strings of the known fields, for rows that failed
    (what was received is kept, cut to the column length; the full source row
    goes to ``json["source_row"]``)."""
    out: dict[str, str] = {}
    for name, limit in RECIPIENT_FIELDS.items():
        value = raw.get(name)
        out[name] = storable("" if value is None else str(value)).strip()[:limit]
    iso = country_normalize(out["country"])
    if iso:
        out["country"] = iso
    return out


def _skip_reason(errors: list[tuple[str, str]]) -> SkipReason:
    fields = {f for f, _ in errors}
    if "country" in fields:
        return SkipReason.INTERNATIONAL
    if ("address1", "address1 is empty") in errors:
        return SkipReason.NO_ADDRESS
    if fields & ADDRESS_FIELDS:
        return SkipReason.INTERNATIONAL
    return SkipReason.NO_ADDRESS


def recipient_validate(
    raw: Mapping[str, Any], *, countries: Collection[str] | None = None, enrichment: bool = False
) -> ValidatedRow:
    """Validate one incoming row for a campaign.

    Skip reasons (the spec has five; validation uses two, by the spec's own
    meanings: NoAddress "No address1 provided", International "Country check
    or address validation failed"):
    - International: the country is missing, not recognised, or not mailed by
      the campaign's printer (``countries``), or another address field fails
      (zip empty, a field too long, ...).
    - NoAddress: address1 is empty (when enrichment is off), or only the name
      fails (no name, an asterisk): a name is the first line of a postal
      address, so a row without a usable addressee has no mailable address.
    With enrichment on, a row without address1 is valid (it is gated into the
    enrichment flow by qualification): its zip may be empty too, since the
    enrichment fills the whole address and the row is validated again.
    """
    try:
        model = RecipientDataValidator.model_validate(raw)
    except ValidationError as exc:
        errors = [_describe(e) for e in exc.errors(include_url=False, include_input=False)]
        data = _clean(raw)
        # pydantic skips the "after" model validator once a field failed.
        if not data["first_name"] and not data["last_name"] and all(f != "name" for f, _ in errors):
            errors.append(("name", "first_name and last_name are both empty"))
        if enrichment and not data["address1"]:
            # Only the emptiness of address1/zip is forgiven (enrichment fills
            # them); a zip too long is still an error, never a silent cut.
            errors = [(f, m) for f, m in errors if not (f in ("address1", "zip") and m == f"{f} is empty")]
        if errors:
            reason = _skip_reason(errors)
            return ValidatedRow(
                data=data,
                natural_key=natural_key(data),
                skip_reason=str(reason),
                errors=[{"field": f, "message": m} for f, m in errors],
            )
    else:
        data = model.model_dump()
    if countries is not None and data["country"] not in countries:
        return ValidatedRow(
            data=data,
            natural_key=natural_key(data),
            skip_reason=str(SkipReason.INTERNATIONAL),
            errors=[{"field": "country", "message": f"country {data['country']} is not mailed by this printer"}],
        )
    return ValidatedRow(data=data, natural_key=natural_key(data))
