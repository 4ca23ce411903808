"""The keys that identify a recipient and a blocked address or email.

``natural_key`` finds the same recipient again when a campaign's audience is
imported twice; the blocklist keys match a recipient against its org's
blocklist however the address is spelled.  All are sha256 hashes of
normalised text (``common.text.text_normalize``): a fixed length, and no PII
in indexes or logs.  A key stored in the database must never change for the
same input, so tests pin their values.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Mapping

from common.geo import country_normalize, us_zip_normalize
from common.text import text_normalize

_ZIP_PLUS_4 = re.compile(r"[0-9]{9}")


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


def natural_key(data: Mapping[str, str]) -> str:
    """64 hex chars identifying a recipient inside its campaign.

    The source's external id when there is one, else the normalised first
    name, last name, address1, zip and country.  Both are hashed so the key
    has a fixed length and no PII shows in indexes or logs.
    """
    if external_id := data.get("external_id"):
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
    squashed = "".join(unicodedata.normalize("NFKC", value).split()).replace("-", "").upper()
    if country != "US":
        return squashed  # no other postcode is cut (the sixth character of a Canadian or British code matters)
    # The leading zeros a spreadsheet dropped put back, as the import does;
    # ZIP+4 and ZIP name the same mailbox for the blocklist.
    squashed = us_zip_normalize(squashed).replace("-", "")
    return squashed[:5] if _ZIP_PLUS_4.fullmatch(squashed) else squashed


def blocklist_address_key(*, address1: str, zip: str, country: str) -> str:
    """Blocklist key of a postal address: address1 casefolded, punctuation
    dropped, common street words abbreviated ("Street" = "St."), the zip without
    spaces or dashes (a US ZIP+4: its first five digits) and the alpha-2 country
    (empty country counts as US, the usual case of a file without a country
    column)."""
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
