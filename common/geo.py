"""Places, as people write them: the one country table and the US state list.

Every part of the project that reads a country (validation, the blocklist, the
printers' approval models) goes through :func:`country_normalize`, so "USA",
"United States" and "us" are one country everywhere.
"""

from __future__ import annotations

import re
import unicodedata

# ISO 3166-1 alpha-2, officially assigned codes.
_ISO2_CODES = """
AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ
CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO
FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE
JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO
MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW
PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM
TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW
"""
_ISO2 = frozenset(_ISO2_CODES.split())
# Spellings seen in real audience files (keys are normalised with _squash).
_COUNTRY_ALIASES = {
    "usa": "US",
    "us": "US",
    "unitedstates": "US",
    "unitedstatesofamerica": "US",
    "america": "US",
    "uk": "GB",
    "unitedkingdom": "GB",
    "greatbritain": "GB",
    "england": "GB",
    "scotland": "GB",
    "wales": "GB",
    "northernireland": "GB",
    "gbr": "GB",
    "can": "CA",
    "canada": "CA",
    "ireland": "IE",
    "irl": "IE",
    "france": "FR",
    "fra": "FR",
    "germany": "DE",
    "deu": "DE",
    "deutschland": "DE",
    "spain": "ES",
    "esp": "ES",
    "italy": "IT",
    "ita": "IT",
    "netherlands": "NL",
    "nld": "NL",
    "australia": "AU",
    "aus": "AU",
    "newzealand": "NZ",
    "nzl": "NZ",
    "mexico": "MX",
    "mex": "MX",
}


def _squash(value: str) -> str:
    # NFKC first: a full-width "US" (U+FF35 U+FF33) is "US", not nothing.
    return re.sub(r"[^0-9a-z]", "", unicodedata.normalize("NFKC", value).casefold())


def country_normalize(value: str) -> str | None:
    """ISO alpha-2 for a country as people write it ("usa", "United Kingdom",
    "gb"), or None when it is not recognised."""
    squashed = _squash(value)
    if squashed in _COUNTRY_ALIASES:
        return _COUNTRY_ALIASES[squashed]
    upper = squashed.upper()
    return upper if upper in _ISO2 else None


# USPS two-letter codes: the 50 states, DC, the territories and the armed-forces
# "states" (AA, AE, AP), which are all valid in the state field of a US address.
US_STATES = frozenset(
    (  # noqa: SIM905 - a table reads better as text
        "AL AK AZ AR CA CO CT DE FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM NY NC ND OH OK "
        "OR PA RI SC SD TN TX UT VT VA WA WV WI WY DC AS GU MP PR VI UM FM MH PW AA AE AP"
    ).split()
)

# Full names as people write them (keys are normalised with _squash).
_US_STATE_NAMES = {
    "alabama": "AL",
    "alaska": "AK",
    "arizona": "AZ",
    "arkansas": "AR",
    "california": "CA",
    "colorado": "CO",
    "connecticut": "CT",
    "delaware": "DE",
    "florida": "FL",
    "georgia": "GA",
    "hawaii": "HI",
    "idaho": "ID",
    "illinois": "IL",
    "indiana": "IN",
    "iowa": "IA",
    "kansas": "KS",
    "kentucky": "KY",
    "louisiana": "LA",
    "maine": "ME",
    "maryland": "MD",
    "massachusetts": "MA",
    "michigan": "MI",
    "minnesota": "MN",
    "mississippi": "MS",
    "missouri": "MO",
    "montana": "MT",
    "nebraska": "NE",
    "nevada": "NV",
    "newhampshire": "NH",
    "newjersey": "NJ",
    "newmexico": "NM",
    "newyork": "NY",
    "northcarolina": "NC",
    "northdakota": "ND",
    "ohio": "OH",
    "oklahoma": "OK",
    "oregon": "OR",
    "pennsylvania": "PA",
    "rhodeisland": "RI",
    "southcarolina": "SC",
    "southdakota": "SD",
    "tennessee": "TN",
    "texas": "TX",
    "utah": "UT",
    "vermont": "VT",
    "virginia": "VA",
    "washington": "WA",
    "westvirginia": "WV",
    "wisconsin": "WI",
    "wyoming": "WY",
    "districtofcolumbia": "DC",
    "washingtondc": "DC",
    "americansamoa": "AS",
    "guam": "GU",
    "northernmarianaislands": "MP",
    "puertorico": "PR",
    "virginislands": "VI",
    "usvirginislands": "VI",
}


def us_state_normalize(value: str) -> str | None:
    """The USPS code of a US state as people write it ("il", "Illinois",
    "New York"), or None when it names no state, territory or military "state"."""
    if value in US_STATES:  # the usual case, already a code
        return value
    squashed = _squash(value)
    if squashed in _US_STATE_NAMES:
        return _US_STATE_NAMES[squashed]
    upper = squashed.upper()
    return upper if upper in US_STATES else None


# A US ZIP a spreadsheet read as a number: 02134 became 2134 (00601, Puerto
# Rico, became 601), 02134-1234 written without its hyphen became 21341234.
_ZIP_SHORT = re.compile(r"([0-9]{3,4})(-[0-9]{4})?")
_ZIP_PLUS4_BARE = re.compile(r"[0-9]{7,9}")


def us_zip_normalize(value: str) -> str:
    """A US ZIP with the leading zeros a spreadsheet dropped put back, and a
    bare nine-digit ZIP+4 given its hyphen; anything else as it was.  No US
    ZIP has fewer than five digits, so a shorter one can only have lost its
    zeros (every ZIP starting with 0 or 00: New England, New Jersey, Puerto
    Rico)."""
    if short := _ZIP_SHORT.fullmatch(value):
        return short.group(1).zfill(5) + (short.group(2) or "")
    if _ZIP_PLUS4_BARE.fullmatch(value):
        full = value.zfill(9)
        return f"{full[:5]}-{full[5:]}"
    return value
