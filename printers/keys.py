"""The one key that names a submission at every printer.

``submission_key`` is both the ``SubmitRequest.idempotency_key`` and the
``SubmitRequest.reference`` (Lob ``metadata[reference]``, Stannp's first tag,
IntelliPrint's ``reference``, Taylor's and the sandbox's ``reference``): one
string, saved on the recipient before the first attempt, that a retry resends
and a reconcile looks up.

Why its shape: ``pc:<org>:<recipient, 8 digits at least>:<gen>``.

- Long enough for every printer: Stannp takes 10 to 1024 characters and Taylor
  10 to 255, so ``pc:1:1:0`` (8) failed there with nothing printed.  The zero-padded
  recipient makes the shortest key :data:`MIN_LENGTH` (15) characters.
- Short enough for every printer and column: three 64-bit ids give at most
  :data:`MAX_LENGTH` (62) characters, under Lob's 256, Taylor's 255, Lob's
  500-character metadata values and our 100-character columns.
- Plain ASCII digits and colons: valid in any HTTP header, a Lob metadata value
  (no quotes or backslashes), a Stannp tag (no commas) and a URL path segment.
- Unique per (org, recipient, gen): numbers without sign, written in decimal
  with a fixed minimum width, joined by a separator no number holds.
"""

from __future__ import annotations

PREFIX = "pc"
RECIPIENT_WIDTH = 8
# The largest id a database column holds (PostgreSQL bigint, SQLite integer).
MAX_ID = 2**63 - 1
MIN_LENGTH = len(f"{PREFIX}:0:{0:0{RECIPIENT_WIDTH}d}:0")
MAX_LENGTH = len(f"{PREFIX}:{MAX_ID}:{MAX_ID}:{MAX_ID}")


def _id(name: str, value: int) -> int:
    # bool is an int subclass: True would silently become "1".
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer id, got {type(value).__name__}")
    if not 0 <= value <= MAX_ID:
        raise ValueError(f"{name} must be between 0 and {MAX_ID}, got {value}")
    return value


def submission_key(*, org_id: int, recipient_id: int, gen: int) -> str:
    """The idempotency key and reference of one submission of one recipient.

    ``gen`` is the recipient's ``submission_gen``: a new key is minted only by
    a new generation, after proving the old key printed nothing."""
    org, recipient, generation = _id("org_id", org_id), _id("recipient_id", recipient_id), _id("gen", gen)
    return f"{PREFIX}:{org}:{recipient:0{RECIPIENT_WIDTH}d}:{generation}"
