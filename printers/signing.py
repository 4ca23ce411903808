"""HMAC and timestamp checks shared by the printers' webhook verification.

Every check fails closed: an empty secret, a missing or malformed value, a
stale or future timestamp all raise :class:`WebhookVerificationError`, and
nothing else escapes (the webhook view turns that into a 400/401, never a 500).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import time

from printers.base import WebhookVerificationError

# Epoch values above this are milliseconds (10**12 ms is 2001-09-09).
_MS_THRESHOLD = 10**12


def _key(secret: str | bytes) -> bytes:
    if not secret:
        raise WebhookVerificationError("no webhook secret is configured: refusing every webhook")
    return secret.encode() if isinstance(secret, str) else secret


def hmac_sha256_hex(secret: str | bytes, message: bytes) -> str:
    """Hex HMAC-SHA256 of ``message``; raises when the secret is empty."""
    return hmac.new(_key(secret), message, hashlib.sha256).hexdigest()


def check_hmac_hex(secret: str | bytes, message: bytes, signature: str | None) -> None:
    """Raise unless ``signature`` is the hex HMAC-SHA256 of ``message`` (constant time)."""
    expected = hmac_sha256_hex(secret, message)
    if not signature:
        raise WebhookVerificationError("missing signature")
    given = signature.strip().lower()
    if not hmac.compare_digest(expected.encode(), given.encode("utf-8", "replace")):
        raise WebhookVerificationError("signature does not match the body")


def parse_timestamp(ts: str | None) -> float:
    """Epoch seconds from a string in seconds or milliseconds; raises when malformed."""
    if ts is None or not str(ts).strip():
        raise WebhookVerificationError("missing signature timestamp")
    try:
        value = float(str(ts).strip())
    except ValueError:
        raise WebhookVerificationError(f"malformed signature timestamp {str(ts)[:40]!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise WebhookVerificationError(f"malformed signature timestamp {str(ts)[:40]!r}")
    return value / 1000 if value > _MS_THRESHOLD else value


def check_timestamp(ts: str | None, tolerance_s: float | str, *, now: float | None = None) -> None:
    """Raise unless ``ts`` (seconds or ms) lies within ``tolerance_s`` of now, either side.

    ``tolerance_s`` comes from settings, possibly as text: anything but a finite positive
    number ("abc", "nan", "inf", 0) refuses the webhook (NaN compares False both ways, so
    it would otherwise accept every timestamp)."""
    try:
        tolerance = float(tolerance_s)
    except (TypeError, ValueError):
        tolerance = math.nan
    if not math.isfinite(tolerance) or tolerance <= 0:
        raise WebhookVerificationError("webhook tolerance must be a positive number of seconds")
    when = parse_timestamp(ts)
    current = time.time() if now is None else now
    skew = when - current
    if skew < -tolerance:
        raise WebhookVerificationError(f"signature timestamp is stale ({-skew:.0f}s old)")
    if skew > tolerance:
        raise WebhookVerificationError(f"signature timestamp is in the future ({skew:.0f}s ahead)")
