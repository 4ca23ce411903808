"""Recipient data validation (spec 000, "Data Validation (sync time)").

``RecipientDataValidator`` is the spec's pydantic model: whitespace stripped on
every string, ``address1``/``zip``/``country`` required and non-empty, at
least one of ``first_name``/``last_name``, no asterisks in names, no name or company
that starts like a spreadsheet formula (``=``, ``+``, ``-``, ``@``).
``recipient_validate`` wraps it with the two checks that need the campaign
(the printer's countries and address enrichment) and turns every failure into
plain words, a skip reason and what goes into ``recipient.json``;
``recipient_recheck`` is the same check for a stored recipient (re-validation).
The natural key and the blocklist keys are in ``campaigns.keys``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from campaigns.enums import CampaignRecipientSkipReason as SkipReason
from campaigns.keys import blocklist_address_key as blocklist_address_key  # re-exported for older imports
from campaigns.keys import blocklist_email_key as blocklist_email_key
from campaigns.keys import blocklist_entry_key as blocklist_entry_key
from campaigns.keys import natural_key
from campaigns.recipient_json import ALTERED_FIELDS, SOURCE_ROW, VALIDATION_ERRORS
from common.geo import country_normalize, us_state_normalize, us_zip_normalize
from common.text import ESCAPED, UNSTORABLE, has_asterisk, storable, strip_invisible

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
# Empty on a row without address1 when the campaign enriches: the enrichment fills them.
ENRICHED_FIELDS = frozenset({"address1", "zip", "country"})
# A postcode as every printer takes it: ASCII letters and digits, spaces and
# hyphens, at least one letter or digit ("\d" would take Arabic-Indic digits).
POSTCODE = re.compile(r"[0-9A-Za-z -]*[0-9A-Za-z][0-9A-Za-z -]*")


# The rules of the validator, as plain functions: the model's validators only
# call them (mutation testing reaches plain functions, not decorated methods).


def _text_rule(value: Any) -> Any:
    """Every field, before its type check: no unstorable character, None is
    empty, whitespace and invisible characters stripped at both ends."""
    if isinstance(value, str):
        if UNSTORABLE.search(value):
            raise ValueError("contains a NUL byte or an invalid character")
        return strip_invisible(value)
    return "" if value is None else value


# A cell a spreadsheet would run as a formula (OWASP CSV injection); leading
# tabs and carriage returns are stripped before this rule runs.
FORMULA_START = ("=", "+", "-", "@")


def _formula_rule(value: str) -> str:
    if value.startswith(FORMULA_START):
        raise ValueError(f"starts with \u201c{value[0]}\u201d like a spreadsheet formula")
    return value


def _name_rule(value: str) -> str:
    if has_asterisk(value):
        raise ValueError("contains an asterisk")
    return _formula_rule(value)


def _postcode_rule(value: str, country: object = None) -> str:
    if not value.isascii():
        value = unicodedata.normalize("NFKC", value)  # full-width digits are digits
    if not POSTCODE.fullmatch(value):
        raise ValueError("may hold only the digits 0-9, the letters A-Z, spaces and hyphens")
    # A US ZIP whose leading zeros a spreadsheet dropped gets them back.
    return us_zip_normalize(value) if country == "US" else value


def _country_rule(value: str) -> str:
    iso = country_normalize(value)
    if iso is None:
        raise ValueError(f"{value!r} is not a recognised country")
    return iso


def _state_rule(value: str, country: object) -> str:
    # An empty state passes: the spec's validator does not require one (the
    # printers that do refuse it at approval, with their own words).
    if not value or country != "US":
        return value
    code = us_state_normalize(value)
    if code is None:
        raise ValueError(f"{value!r} is not a US state")
    return code


class RecipientDataValidator(BaseModel):
    """The spec's sync-time validator; field names are CampaignRecipient's.
    ``country`` comes before ``state``: the state rule reads the country."""

    model_config = ConfigDict(str_strip_whitespace=True, extra="ignore", coerce_numbers_to_str=True)

    external_id: str = Field(default="", max_length=200)
    first_name: str = Field(default="", max_length=200)
    last_name: str = Field(default="", max_length=200)
    company: str = Field(default="", max_length=200)
    address1: str = Field(min_length=1, max_length=200)
    address2: str = Field(default="", max_length=200)
    city: str = Field(default="", max_length=100)
    country: str = Field(min_length=1, max_length=100)
    state: str = Field(default="", max_length=100)
    zip: str = Field(min_length=1, max_length=20)
    email: str = Field(default="", max_length=254)

    @field_validator("*", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        return _text_rule(value)

    @field_validator("first_name", "last_name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _name_rule(value)

    @field_validator("company")
    @classmethod
    def _company(cls, value: str) -> str:
        return _formula_rule(value)

    @field_validator("zip")
    @classmethod
    def _postcode(cls, value: str, info: ValidationInfo) -> str:
        return _postcode_rule(value, info.data.get("country"))

    @field_validator("country")
    @classmethod
    def _country(cls, value: str) -> str:
        return _country_rule(value)

    @field_validator("state")
    @classmethod
    def _state(cls, value: str, info: ValidationInfo) -> str:
        return _state_rule(value, info.data.get("country"))

    @model_validator(mode="after")
    def _has_a_name(self) -> RecipientDataValidator:
        if not self.first_name and not self.last_name:
            raise ValueError("first_name and last_name are both empty")
        return self


@dataclass(slots=True)
class ValidatedRow:
    """A row ready to store: the cleaned fields, and (when it failed) the skip
    reason, the errors in plain words and ``json``, everything about the row
    that goes into ``recipient.json``: validation_errors, source_row (what was
    received, untruncated) and altered_fields (the fields stored differently
    from what was received)."""

    data: dict[str, str]
    natural_key: str
    skip_reason: str = ""
    errors: list[dict[str, str]] = field(default_factory=list)
    json: dict[str, Any] = field(default_factory=dict)


def _describe(err: Mapping[str, Any]) -> tuple[str, str]:
    loc = err.get("loc") or ()
    # The only model-level rule is the name rule.
    name = str(loc[0]) if loc else "name"
    kind = err["type"]
    if kind in ("missing", "string_too_short"):  # every minimum length is 1
        return name, f"{name} is empty"
    if kind == "string_too_long":
        return name, f"{name} is longer than {err['ctx']['max_length']} characters"
    if kind == "string_type":
        return name, f"{name} is not text"
    message = str(err["msg"]).removeprefix("Value error, ")
    return name, message if not loc else f"{name} {message}"


def stored_copy(name: str, value: Any) -> str:
    """What a failed row keeps of ``value`` in column ``name``: text with
    unstorable characters written out, stripped, cut to the column length."""
    text = "" if value is None else str(value)
    return strip_invisible(strip_invisible(storable(text))[: RECIPIENT_FIELDS[name]])


def _as_read(value: Any) -> str | None:
    """``value`` as the validator reads it: text stripped, a number as text;
    None for anything else (a list, a bool: not text)."""
    if isinstance(value, str):
        return strip_invisible(value)
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        return str(value)
    return None


def _clean(raw: Mapping[str, Any]) -> tuple[dict[str, str], list[str]]:
    """Best-effort stored copy of the known fields of a row that failed, and
    the names of the fields whose copy differs from what was received (cut,
    escaped or not text: the full row goes to ``json["source_row"]``).  Only
    unaltered values are normalised, so a copy can be recognised later."""
    data: dict[str, str] = {}
    altered: list[str] = []
    for name in RECIPIENT_FIELDS:
        value = raw.get(name)
        data[name] = stored_copy(name, value)
        if value is not None and data[name] != _as_read(value):
            altered.append(name)
    if "country" not in altered:
        data["country"] = country_normalize(data["country"]) or data["country"]
    if data["country"] == "US" and "state" not in altered:
        data["state"] = us_state_normalize(data["state"]) or data["state"]
    if data["country"] == "US" and "zip" not in altered:
        data["zip"] = us_zip_normalize(data["zip"])
    return data, altered


def _skip_reason(errors: list[tuple[str, str]]) -> SkipReason:
    fields = {f for f, _ in errors}
    if "country" in fields:
        return SkipReason.INTERNATIONAL
    if ("address1", "address1 is empty") in errors:
        return SkipReason.NO_ADDRESS
    if fields & ADDRESS_FIELDS:
        return SkipReason.INTERNATIONAL
    return SkipReason.NO_ADDRESS


def _failed(
    data: dict[str, str], errors: list[tuple[str, str]], source: Mapping[str, Any], altered: Collection[str] = ()
) -> ValidatedRow:
    listed = [{"field": f, "message": m} for f, m in errors]
    json: dict[str, Any] = {VALIDATION_ERRORS: [{k: storable(v) for k, v in e.items()} for e in listed]}
    # What was received, untruncated: a skipped row loses nothing.
    received = {k: storable(str(source[k])) for k in RECIPIENT_FIELDS if source.get(k) not in (None, "")}
    if received:
        json[SOURCE_ROW] = received
    if altered:
        json[ALTERED_FIELDS] = list(altered)
    return ValidatedRow(data, natural_key(data), str(_skip_reason(errors)), listed, json)


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
    enrichment flow by qualification): its zip and country may be empty too,
    since the enrichment fills the whole address and the row is validated again.
    """
    try:
        model = RecipientDataValidator.model_validate(raw)
    except ValidationError as exc:
        errors = [_describe(e) for e in exc.errors()]
        data, altered = _clean(raw)
        # pydantic skips the "after" model validator once a field failed.
        if not data["first_name"] and not data["last_name"] and all(f != "name" for f, _ in errors):
            errors.append(("name", "first_name and last_name are both empty"))
        if enrichment and not data["address1"]:
            # Only the emptiness of address1/zip/country is forgiven (enrichment
            # fills the whole address, a Shopify customer with no address has
            # no country either); a zip too long is still an error, never a
            # silent cut.
            errors = [(f, m) for f, m in errors if not (f in ENRICHED_FIELDS and m == f"{f} is empty")]
        if errors:
            return _failed(data, errors, raw, altered)
    else:
        data = model.model_dump()
    to_enrich = enrichment and not data["address1"] and not data["country"]  # its country comes with the address
    if countries is not None and data["country"] not in countries and not to_enrich:
        return _failed(data, [("country", f"country {data['country']} is not mailed by this printer")], raw)
    return ValidatedRow(data=data, natural_key=natural_key(data))


def _altered_message(name: str, received: str) -> str:
    limit = RECIPIENT_FIELDS[name]
    if len(strip_invisible(received)) > limit:
        return f"{name} was cut to {limit} characters on import: edit it"
    if ESCAPED.search(received):
        return f"{name} held a NUL byte or an invalid character, written out as text on import: edit it"
    return f"{name} was not text and was stored as text on import: edit it"


def recipient_recheck(
    data: Mapping[str, str],
    *,
    stored: Mapping[str, Any],
    countries: Collection[str] | None = None,
    enrichment: bool = False,
) -> ValidatedRow:
    """Validate a stored recipient again (re-validation).  ``stored`` is its
    ``recipient.json`` as it was before the re-validation: a field listed in
    ``altered_fields`` whose value is still the altered copy of what was
    received fails until a person edits it; an edited field is checked like
    any other.  A failure keeps the original ``source_row``."""
    source: Mapping[str, Any] = stored.get(SOURCE_ROW) or {}
    listed = stored.get(ALTERED_FIELDS)
    still: list[tuple[str, str]] = []
    for name in listed if isinstance(listed, list) else []:
        if name not in RECIPIENT_FIELDS:
            continue
        received = source.get(name)
        if received is None:  # what was received is lost: it cannot be told apart from an edit
            still.append((name, f"{name} was changed on import: edit it"))
        elif data.get(name, "") == stored_copy(name, received):
            still.append((name, _altered_message(name, str(received))))
    row = recipient_validate(data, countries=countries, enrichment=enrichment)
    if not still and not row.skip_reason:
        return row
    errors = still + [(e["field"], e["message"]) for e in row.errors]
    failed = _failed(row.data, errors, {}, [name for name, _ in still])
    if source:
        failed.json[SOURCE_ROW] = dict(source)
    return failed
