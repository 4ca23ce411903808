"""Taylor's status table: numeric codes -> our mailpiece states (the spec's mapping, ``shared/spec/001``).

The table is overridable per deployment in ``settings.PRINTERS_CONF["taylor"]["status_map"]``
(see :func:`load_status_map`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from mailpieces.status import MailpieceStatus

S = MailpieceStatus

STATUS_MAP: dict[str, MailpieceStatus] = {
    "9": S.PROCESSED,
    "10": S.PROCESSED,
    "11": S.HANDED_OVER,
    "12": S.DELIVERED,
    "-1": S.ERROR,
}
STATUS_CODE = re.compile(r"[-+]?[0-9]+")


def status_code(value: Any) -> str:
    """A status code as the table's key: 11, "11" and " 011" are all "11".

    Only plain ASCII digits are normalised: ``int()`` alone would also read
    "1_2" or Arabic-Indic digits as 12 and turn garbage into Delivered."""
    text = str(value).strip()
    # The length cap keeps int() clear of its 4300-digit limit: convert_status never raises.
    return str(int(text)) if len(text) <= 20 and STATUS_CODE.fullmatch(text) else text


def load_status_map(override: Mapping[Any, Any] | None) -> dict[str, MailpieceStatus]:
    """The spec's table with ``override`` laid over it (map a code to "Unknown" to drop it)."""
    table = dict(STATUS_MAP)
    for code, name in (override or {}).items():
        try:
            table[status_code(code)] = MailpieceStatus(name)
        except ValueError:
            raise ImproperlyConfigured(
                f"PRINTERS_CONF['taylor']['status_map'][{code!r}] = {name!r} is not a mailpiece status; "
                f"use one of {', '.join(MailpieceStatus.values)}"
            ) from None
    return table
