"""The holdout (control group) draw.

A recipient is held out when a hash of (campaign seed, recipient natural key)
falls below the campaign's holdout percentage.  Nothing random is stored or
re-drawn: re-running qualification, re-importing the file or auditing the
split later gives the same answer for the same recipient, and each
recipient's draw is independent of the others, so the achieved share is a
binomial sample around the target (within a few standard errors).
"""

from __future__ import annotations

import hashlib
from decimal import Decimal

BUCKETS = 10_000  # basis points: Campaign.holdout_percent has two decimals


def holdout_bucket(*, seed: str, natural_key: str) -> int:
    """A uniform integer in [0, 10000) fixed by the seed and the key."""
    digest = hashlib.sha256(f"holdout\x1f{seed}\x1f{natural_key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def holdout_threshold(percent: Decimal | float | int) -> int:
    """Buckets below this number are held out (10 % -> 1000)."""
    threshold = int((Decimal(str(percent)) * 100).to_integral_value())
    return max(0, min(BUCKETS, threshold))


def holdout_draw(*, seed: str, natural_key: str, percent: Decimal | float | int) -> bool:
    return holdout_bucket(seed=seed, natural_key=natural_key) < holdout_threshold(percent)
