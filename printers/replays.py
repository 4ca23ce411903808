"""A create refused because its idempotency key was already used: the piece exists.

Stannp (400, same key with another body), Taylor (422 ``idempotency_key_reused``)
and Lob (200 with a postcard that is not ours) all say the same thing: a piece was
made under this key.  Reporting that as a permanent failure would put the
recipient in Error, and an Error invites a resubmit under a new key: a second
print.  So the piece is looked up by our reference instead (reliability.md:
lookup before resubmit).
"""

from __future__ import annotations

import re

from printers.base import Printer, PrinterError, Submission, SubmitRequest

KEY_REUSED = "idempotency_key_reused"
# Stannp says it in words only ("Idempotency key already used with a different
# request."); a refused key format ("must be 10 to 1024 characters") also names the
# key, so one of these words must follow.
KEY_REUSED_MESSAGE = re.compile(r"idempotency.{0,40}\b(already|re-?used|used with)\b", re.IGNORECASE)


def says_key_reused(error: PrinterError) -> bool:
    """True when a create was refused because its idempotency key was already used:
    Taylor's code, or a 400/422 whose message says so (Stannp, and Lob should it ever)."""
    if error.code == KEY_REUSED:
        return True
    return error.status_code in (400, 422) and bool(KEY_REUSED_MESSAGE.search(error.message))


def existing_after_key_reuse(printer: Printer, request: SubmitRequest, cause: PrinterError | None) -> Submission:
    """The piece made under ``request``'s key, found by its reference.

    When the lookup finds nothing (a listing that lags, a key reused for another
    reference) or fails, the error is transient: the retry keeps the same key and
    settles it, and nothing is resubmitted under a new one.
    """
    try:
        found = printer.lookup(request.reference)
    except PrinterError as exc:
        found, cause = None, exc
    if found is None:
        raise PrinterError(
            f"{printer.label} says this submission's idempotency key was already used, "
            f"and its piece could not be found by the reference {request.reference} yet",
            permanent=False,
            status_code=cause.status_code if cause else None,
            code=KEY_REUSED,
        ) from cause
    return found
