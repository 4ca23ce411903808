"""Faraday Lookup API client (shared/docs/vendors.md §6).

``POST {base_url}/targets/{target_id}/lookup`` with a bearer key and the
identifiers as JSON.  A 200 either echoes the identity (with
``house_number_and_street``, ``city``, ``state``, ``postcode`` when the Scope
returns the address) or carries ``"error": "Could not match ..."``, which is a
no-match, not an HTTP error.  ``*_only`` match types are low confidence and not
mailed.  HTTP goes through the one outbound seam (``common.http``: a pooled
client, a timeout, configuration errors classified as permanent), which raises
:class:`EnrichmentError` itself; there is no in-call retry, a failed lookup is
retried by a later run (lease expiry).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from campaigns.enrichment.base import EnrichedAddress, EnrichmentError, EnrichmentQuery, EnrichmentResult
from common import http as outbound

DEFAULT_TIMEOUT_S = 10.0
FATAL_STATUSES = frozenset({401, 403, 404})  # credentials or target id: every lookup would fail


class FaradayLookupResponse(BaseModel):
    model_config = ConfigDict(extra="allow")

    error: str | None = None
    match_type: str | None = None
    house_number_and_street: str | None = None
    city: str | None = None
    state: str | None = None
    postcode: str | None = None

    @field_validator("postcode", mode="before")
    @classmethod
    def _postcode_as_text(cls, value: Any) -> Any:
        # Documented as a 5-digit string; an int would lose leading zeros, so pad it.
        return f"{value:05d}" if isinstance(value, int) else value


class FaradayClient:
    name = "faraday"

    def __init__(self, *, api_key: str, base_url: str, target_id: str, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        if not api_key or not target_id:
            raise EnrichmentError(
                "Faraday enrichment needs FARADAY_API_KEY and FARADAY_TARGET_ID (a Lookup API target)", permanent=True
            )
        self.url = f"{base_url.rstrip('/')}/targets/{target_id}/lookup"
        self.headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
        self.timeout = timeout

    @classmethod
    def from_settings(cls, conf: Mapping[str, Any]) -> FaradayClient:
        return cls(
            api_key=str(conf.get("api_key") or ""),
            base_url=str(conf.get("base_url") or "https://api.faraday.ai/v1"),
            target_id=str(conf.get("target_id") or ""),
            timeout=float(conf.get("timeout_s") or DEFAULT_TIMEOUT_S),
        )

    @staticmethod
    def identifiers(query: EnrichmentQuery) -> dict[str, str] | None:
        """The request body, or None when Faraday's required combinations
        (street + city + state | email | phone + last name) cannot be met
        without a street."""
        if not query.email and not (query.phone and query.last_name):
            return None
        body = {
            "person_first_name": query.first_name,
            "person_last_name": query.last_name,
            "email": query.email,
            "phone": query.phone,
            "city": query.city,
            "state": query.state,
            "postcode": query.zip[:5],
        }
        return {k: v for k, v in body.items() if v}

    def lookup(self, query: EnrichmentQuery) -> EnrichmentResult:
        body = self.identifiers(query)
        if body is None:
            return EnrichmentResult(outcome="no_address", detail="Faraday needs an email, or a phone and a last name")
        response = outbound.request(
            "POST",
            self.url,
            json=body,
            headers=self.headers,
            timeout=self.timeout,
            error=EnrichmentError,
            service="Faraday",
        )
        if response.status_code in FATAL_STATUSES:
            raise EnrichmentError(
                f"Faraday refused the lookup: HTTP {response.status_code} {_code(response)}", permanent=True
            )
        if response.status_code == 400:
            return EnrichmentResult(outcome="no_address", detail=f"Faraday rejected the identifiers: {_code(response)}")
        if response.status_code != 200:
            raise EnrichmentError(f"Faraday error: HTTP {response.status_code} {_code(response)}")
        try:
            data = FaradayLookupResponse.model_validate(response.json())
        except (ValueError, ValidationError) as exc:
            raise EnrichmentError(f"Faraday answered 200 with an unreadable body: {type(exc).__name__}") from exc
        return _result(data)


def _result(data: FaradayLookupResponse) -> EnrichmentResult:
    if data.error:
        return EnrichmentResult(outcome="no_match", detail=data.error)
    match_type = data.match_type or ""
    if match_type.endswith("_only"):
        return EnrichmentResult(
            outcome="no_address", detail=f"low-confidence match ({match_type})", match_type=match_type
        )
    if not (data.house_number_and_street and data.city and data.state and data.postcode):
        return EnrichmentResult(
            outcome="no_address", detail="matched, but the answer holds no full postal address", match_type=match_type
        )
    address = EnrichedAddress(
        address1=data.house_number_and_street, city=data.city, state=data.state, zip=data.postcode
    )
    return EnrichmentResult(address=address, match_type=match_type)


def _code(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            return str(error.get("code") or error.get("message") or "")
        return str(body.get("code") or error or "")
    return ""
