"""The schema of ``CampaignRecipient.json`` (the spec's ``recipient.json``).

One module owns the keys: writers and readers import the names from here, so a
key is spelled once, and what counts as a "problem" (cleared when the problem
is cleared) is decided once.  Every key is optional; a recipient imported
cleanly holds at most ``extra``.

=================  ==========================================================
key                what it holds
=================  ==========================================================
extra              columns the import did not map to a field, as received
source_row         the recipient's fields as received, untruncated (rows that
                   failed validation, so nothing received is lost)
altered_fields     names of fields whose stored value differs from what was
                   received (cut to the column length, or a character
                   escaped): re-validation refuses them until a person edits
validation_errors  why the data failed validation: ``[{field, message}]``
approval_errors    why the printer's approval model refused it:
                   ``[{loc, msg, type}]`` (pydantic's error shape)
skip_details       free-form details given with a per-object skip
enrichment         the address lookup: backend, outcome, detail, match, and
                   ``error`` when the lookup itself failed
=================  ==========================================================
"""

from __future__ import annotations

from typing import Any, Final

from campaigns.enums import CampaignRecipientSkipReason as SkipReason

EXTRA: Final = "extra"
SOURCE_ROW: Final = "source_row"
ALTERED_FIELDS: Final = "altered_fields"
VALIDATION_ERRORS: Final = "validation_errors"
APPROVAL_ERRORS: Final = "approval_errors"
SKIP_DETAILS: Final = "skip_details"
ENRICHMENT: Final = "enrichment"
ENRICHMENT_ERROR: Final = "error"
# The printer answered a submission of this row with an id another mailpiece
# already has: it accepted something under the row's key, so the row's Error
# does not mean "nothing at the printer" (``campaigns.models.may_be_at_printer``).
PRINTER_MAY_HAVE_IT: Final = "printer_may_have_it"


# Key paths that describe a problem of the recipient.  Transitions that clear
# the problem (``CLEAR_PROBLEM`` in campaigns.models: re-validate, retry,
# stage) remove them all, per object and in bulk, so no trace of an old
# problem outlives its fix.  The enrichment trail itself stays (it says where
# the address came from); only its error goes.
PROBLEM_KEYS: Final[tuple[tuple[str, ...], ...]] = (
    (VALIDATION_ERRORS,),
    (APPROVAL_ERRORS,),
    (SKIP_DETAILS,),
    (ALTERED_FIELDS,),
    (ENRICHMENT, ENRICHMENT_ERROR),
)

# The details that explain each skip reason: ``CampaignRecipient.why`` shows
# only these, so a row skipped for a new reason never shows an old reason's
# details.  ``skip_details`` is written with the skip itself, so it always
# belongs to the current reason.
REASON_DETAIL_KEYS: Final[dict[str, tuple[str, ...]]] = {
    SkipReason.NO_ADDRESS: (VALIDATION_ERRORS, ENRICHMENT, SKIP_DETAILS),
    SkipReason.INTERNATIONAL: (VALIDATION_ERRORS, SKIP_DETAILS),
    SkipReason.CAP_EXCEEDED: (SKIP_DETAILS,),
    SkipReason.ENRICHMENT_FAILED: (ENRICHMENT, SKIP_DETAILS),
    SkipReason.PRINTER_APPROVAL_FAILED: (APPROVAL_ERRORS, SKIP_DETAILS),
}


def skip_details(json: dict[str, Any] | None, skip_reason: str) -> list[str]:
    """The recorded details, in plain words, that explain ``skip_reason``."""
    data = json if isinstance(json, dict) else {}
    out: list[str] = []
    for key in REASON_DETAIL_KEYS.get(skip_reason, (SKIP_DETAILS,)):
        value = data.get(key)
        if key == VALIDATION_ERRORS:
            out += [str(e.get("message", "")) for e in value or [] if isinstance(e, dict)]
        elif key == APPROVAL_ERRORS:
            out += [str(e.get("msg", "")) for e in value or [] if isinstance(e, dict)]
        elif key == ENRICHMENT and isinstance(value, dict):
            out.append(str(value.get(ENRICHMENT_ERROR) or value.get("detail") or ""))
        elif key == SKIP_DETAILS and value:
            out.append(value if isinstance(value, str) else _describe(value))
    return [d for d in out if d]


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}: {v}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)
