"""The address IntelliPrint receives: one builder for the payload and for the approval model.

IntelliPrint takes a recipient as ``{name, line, postcode, country}`` where ``line`` is ONE
complete address line (vendors.md §3.1).  The client's payload and the approval model both
call :func:`intelliprint_address`, so the line that is approved is byte for byte the line
that is sent (a company put in front of the line once pushed a 154-character line past an
approval that measured a shorter one).
"""

from __future__ import annotations

from dataclasses import dataclass

from common.geo import country_normalize
from printers.approval import UK_POSTCODE

LINE_MAX = 150

# Every character ``str.splitlines`` breaks on: a printer's template may honour any of
# them, so each one would split the one address line into two printed lines.
LINE_SEPARATORS = frozenset("\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")

# Unicode White_Space: what the approval model's ``str_strip_whitespace`` trims.  The
# builder trims the same set (not ``str.strip``, which also trims \x1c-\x1f), so a
# part is approved and sent with the same characters.
WHITE_SPACE = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B))) + "\u2028\u2029\u202f\u205f\u3000"
)


@dataclass(frozen=True)
class IntelliprintAddress:
    """What the payload's ``recipients[0].address`` carries."""

    name: str
    line: str
    postcode: str
    country: str

    def as_payload(self) -> dict[str, str]:
        return {"name": self.name, "line": self.line, "postcode": self.postcode, "country": self.country}


def has_line_break(value: str) -> bool:
    return not LINE_SEPARATORS.isdisjoint(value)


def trim(value: str) -> str:
    """``value`` without leading and trailing Unicode white space, as the approval model trims it."""
    return value.strip(WHITE_SPACE)


def intelliprint_postcode(value: str) -> str | None:
    """``value`` as a Royal Mail postcode (upper case, one space), or None when it is not one."""
    value = trim(value)
    # isascii() first: upper() turns some non-ASCII letters into ASCII ones (long s, U+017F, -> "S").
    if not value.isascii():
        return None
    match = UK_POSTCODE.fullmatch(value.upper())
    return f"{match.group(1)} {match.group(2)}" if match else None


def intelliprint_address(
    *, name: str, company: str, address1: str, address2: str, city: str, postcode: str, country: str
) -> IntelliprintAddress:
    """The address as sent.  A person's name takes the ``name`` slot and the company goes in
    front of the line; without a name the company takes the slot.  Parts are trimmed as the
    approval model trims them (a trailing line break is dropped from both); a postcode or
    country that is not valid is passed on as written, for the approval to refuse."""
    name, company, address1, address2, city = (trim(p) for p in (name, company, address1, address2, city))
    line = ", ".join(p for p in (company if name else "", address1, address2, city) if p)
    return IntelliprintAddress(
        name=name or company,
        line=line,
        postcode=intelliprint_postcode(postcode) or trim(postcode),
        country=country_normalize(country) or trim(country).upper(),
    )


def intelliprint_address_problems(address: IntelliprintAddress) -> list[str]:
    """What IntelliPrint would refuse or misprint in ``address``, in plain words (empty when fine)."""
    problems = []
    if len(address.line) > LINE_MAX:
        problems.append(f"the address line must be at most {LINE_MAX} characters, got {len(address.line)}")
    for label, value in (("name", address.name), ("address line", address.line)):
        if has_line_break(value):
            problems.append(f"the {label} must not contain line breaks")
    return problems
