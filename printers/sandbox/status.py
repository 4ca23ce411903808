"""The sandbox's status table: it speaks our own vocabulary (``shared/spec/001``), so every status maps to itself."""

from __future__ import annotations

from mailpieces.status import MailpieceStatus

# The sandbox speaks our own vocabulary: every status maps to itself.
STATUS_MAP: dict[str, MailpieceStatus] = {status.value: status for status in MailpieceStatus}
