"""What a printer is sent for one recipient, built once and saved.

The request is saved on the recipient (``json["submission"]``) before the
first attempt, as plain JSON: every retry rebuilds the identical
``SubmitRequest`` from it, so the printer sees the same bytes under the same
key (Stannp refuses a replayed key with a changed body).
"""

from __future__ import annotations

from typing import Any

from campaigns.models import Campaign, CampaignRecipient
from campaigns.proofing.public import proof_public_url
from printers.base import Address, SubmitRequest


def recipient_address(r: CampaignRecipient) -> Address:
    """The printer's address block: the name from the trimmed first and last
    names (the approval rules check the same), else the company."""
    name = " ".join(p.strip() for p in (r.first_name, r.last_name) if p and p.strip())
    return Address(
        name=name or r.company,
        company=r.company if name else "",
        address1=r.address1,
        address2=r.address2,
        city=r.city,
        state=r.state,
        zip=r.zip,
        country=r.country or "US",
    )


def submission_payload(campaign: Campaign, r: CampaignRecipient, key: str) -> dict[str, Any]:
    """The request as JSON, with links to the proof images."""
    address = recipient_address(r)
    return {
        "reference": key,
        "to": {
            "name": address.name,
            "company": address.company,
            "address1": address.address1,
            "address2": address.address2,
            "city": address.city,
            "state": address.state,
            "zip": address.zip,
            "country": address.country,
        },
        "front": proof_public_url(r.proof_url),
        "back": proof_public_url(r.proof_back_url),
        "size": campaign.size,
        "metadata": {
            "recipient_id": str(r.pk),
            "campaign_id": str(campaign.pk),
            "submission_gen": str(r.submission_gen),
        },
    }


def submit_request(payload: dict[str, Any], key: str) -> SubmitRequest:
    return SubmitRequest(
        reference=str(payload.get("reference") or key),
        idempotency_key=key,
        to=Address(**payload["to"]),
        front=str(payload.get("front") or ""),
        back=str(payload.get("back") or ""),
        size=str(payload.get("size") or "4x6"),
        # In key order: PostgreSQL's jsonb gives the saved request back with its
        # keys reordered, and a retry must send the first attempt's bytes.
        metadata=dict(sorted((str(k), str(v)) for k, v in (payload.get("metadata") or {}).items())),
    )
