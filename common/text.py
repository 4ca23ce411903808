"""Text as people and integrations send it: what a database cannot store, what
cannot be seen, and the one normalised form keys are built from."""

from __future__ import annotations

import re
import unicodedata

# Characters no database column can hold: PostgreSQL refuses NUL in text and
# jsonb (SQLite takes it, so only production would fail), and a lone surrogate
# cannot be encoded as UTF-8 by either driver.
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# What ``storable`` writes in their place.
ESCAPED = re.compile(r"\\x00|\\ud[89a-f][0-9a-f]{2}")
# Invisible characters that are neither whitespace nor format (Cf) or control
# (Cc) characters: the default-ignorable marks and the blank "letters" (Hangul
# fillers, the blank braille pattern).
_BLANKS = frozenset(
    "\u034f\u115f\u1160\u17b4\u17b5\u180b\u180c\u180d\u180f\u2800\u3164\uffa0"
    + "".join(map(chr, range(0xFE00, 0xFE10)))
)
_ASCII_INVISIBLE = "".join(map(chr, range(33))) + "\x7f"  # controls, space and DEL
# Asterisks and their look-alikes, checked after NFKC (which already folds the
# full-width and small asterisks into "*"): every character named "asterisk"
# but the cuneiform signs, plus the stars used as asterisks.
ASTERISKS = frozenset(
    "*\u0359\u066d\u204e\u2051\u2055\u20f0\u2217\u229b\u22c6\u2722\u2723\u2724\u2725\u2731\u2732\u2733"
    "\u273a\u273b\u273c\u273d\u2743\u2749\u274a\u274b\u29c6\u2a6e\ua673\U000e002a"
    + "".join(map(chr, range(0x1F7AF, 0x1F7C0)))
)


def storable(value: str) -> str:
    """``value`` with every unstorable character written out as an escape
    (``\\x00``, ``\\udc80``): what was received stays readable in json."""
    if not UNSTORABLE.search(value):
        return value
    return UNSTORABLE.sub(
        lambda m: f"\\x{ord(m.group()):02x}" if m.group() == "\x00" else f"\\u{ord(m.group()):04x}",
        value,
    )


def _invisible(char: str) -> bool:
    return char.isspace() or unicodedata.category(char) in ("Cc", "Cf") or char in _BLANKS


def strip_invisible(value: str) -> str:
    """``value`` without leading and trailing whitespace or invisible
    characters (zero-width space, joiners, BOM, soft hyphen...): a value made
    only of them is empty, as it looks on a card.  Inside a value they stay (a
    ZWNJ is part of some spellings)."""
    if value.isascii():  # the usual case, at C speed
        return value.strip(_ASCII_INVISIBLE)
    start, end = 0, len(value)
    while start < end and _invisible(value[start]):
        start += 1
    while end > start and _invisible(value[end - 1]):
        end -= 1
    return value[start:end]


def has_asterisk(value: str) -> bool:
    """Whether ``value`` holds an asterisk or a look-alike (full-width, operator, heavy asterisk...)."""
    if value.isascii():  # the usual case: no look-alike is ASCII
        return "*" in value
    return not ASTERISKS.isdisjoint(unicodedata.normalize("NFKC", value))


def text_normalize(value: str) -> str:
    """NFKC, casefolded, whitespace collapsed: the form keys are built from."""
    return " ".join(unicodedata.normalize("NFKC", value).casefold().split())
