"""The enrichment client interface and the backend switch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from django.conf import settings

from common.http import OutboundError


@dataclass(frozen=True)
class EnrichmentQuery:
    """What is known about a recipient without an address."""

    first_name: str = ""
    last_name: str = ""
    email: str = ""
    phone: str = ""
    city: str = ""
    state: str = ""
    zip: str = ""


@dataclass(frozen=True)
class EnrichedAddress:
    address1: str
    city: str
    state: str
    zip: str
    address2: str = ""
    country: str = "US"


@dataclass(frozen=True)
class EnrichmentResult:
    """``address`` when the lookup found a usable one; otherwise ``outcome``
    says why not: "no_match" (the service returned no result: EnrichmentFailed)
    or "no_address" (matched without a usable postal address, or too little to
    look up: NoAddress).  ``detail`` is kept on the recipient for ops."""

    address: EnrichedAddress | None = None
    outcome: str = "matched"
    detail: str = ""
    match_type: str = ""


class EnrichmentError(OutboundError):
    """The lookup could not be made (network, 5xx, 429, bad credentials).

    Built like every :class:`~common.http.OutboundError` (``permanent=``), so the
    outbound seam raises it directly.  ``fatal`` is the enrichment run's word for
    ``permanent``: credentials or configuration, which stop the whole run because
    every other lookup would fail the same way."""

    @property
    def fatal(self) -> bool:
        return self.permanent


class EnrichmentClient(Protocol):
    name: str

    def lookup(self, query: EnrichmentQuery) -> EnrichmentResult: ...


def get_enrichment_client() -> EnrichmentClient:
    conf = dict(getattr(settings, "ENRICHMENT", None) or {})
    backend = conf.get("backend") or "local"
    if backend == "local":
        from campaigns.enrichment.local import LocalEnrichmentClient

        return LocalEnrichmentClient()
    if backend == "faraday":
        from campaigns.enrichment.faraday import FaradayClient

        return FaradayClient.from_settings(conf)
    raise EnrichmentError(f"unknown ENRICHMENT backend {backend!r}: use 'local' or 'faraday'", permanent=True)
