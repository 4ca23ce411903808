"""Offline enrichment from a bundled sample of invented US addresses.

Deterministic, documented behaviour (docs/recipient-sync.md):
- a query with neither a name nor an email cannot be looked up: no_address;
- an email or name containing "nomatch" never matches (for demos and tests);
- otherwise a hash of the casefolded email (else the name) picks a bucket:
  buckets 0-1 of 10 do not match (about 20 %, EnrichmentFailed), the others get
  the sample address the same hash selects.  The same recipient always gets
  the same answer.
"""

from __future__ import annotations

import csv
import hashlib
from functools import cache
from pathlib import Path

from campaigns.enrichment.base import EnrichedAddress, EnrichmentQuery, EnrichmentResult

SAMPLE = Path(__file__).with_name("sample_addresses.csv")
NO_MATCH_BUCKETS = 2  # of 10


@cache
def sample_addresses() -> tuple[EnrichedAddress, ...]:
    with SAMPLE.open(encoding="utf-8", newline="") as f:
        rows = csv.DictReader(line for line in f if not line.startswith("#"))
        return tuple(EnrichedAddress(**row) for row in rows)


class LocalEnrichmentClient:
    name = "local"

    def lookup(self, query: EnrichmentQuery) -> EnrichmentResult:
        identity = query.email.strip().casefold() or " ".join(
            p.strip().casefold() for p in (query.first_name, query.last_name) if p.strip()
        )
        if not identity:
            return EnrichmentResult(outcome="no_address", detail="neither a name nor an email to look up")
        if "nomatch" in identity:
            return EnrichmentResult(outcome="no_match", detail="no identity matched (local sample)")
        number = int.from_bytes(hashlib.sha256(identity.encode()).digest()[:8], "big")
        if number % 10 < NO_MATCH_BUCKETS:
            return EnrichmentResult(outcome="no_match", detail="no identity matched (local sample)")
        addresses = sample_addresses()
        match_type = "email_full_name" if query.email else "address_full_name"
        return EnrichmentResult(address=addresses[(number // 10) % len(addresses)], match_type=match_type)
