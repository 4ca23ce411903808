"""The demo data set: one org, one campaign on the sandbox printer, a small
audience with every kind of person the pipeline meets, and an admin user."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.db import transaction

from campaigns.models import BlocklistEntry, Campaign, CampaignRecipient, Organization
from campaigns.services import recipients_record_created
from common.fsm import Actor

DEMO_ORG = "Demo Coffee Roasters"
DEMO_CAMPAIGN = "Winter welcome-back postcards"

# (first, last, address1, city, state, zip, country): invented people.
AUDIENCE = [
    ("Ada", "Lovelace", "12 Analytical Way", "Springfield", "IL", "62701", "US"),
    ("Grace", "Hopper", "401 Compiler Ct", "Arlington", "VA", "22201", "US"),
    ("Alan", "Turing", "9 Enigma Rd", "Madison", "WI", "53703", "US"),
    ("Katherine", "Johnson", "77 Orbit Ave", "Hampton", "VA", "23669", "US"),
    ("Edsger", "Dijkstra", "3 Shortest Path", "Austin", "TX", "78701", "US"),
    ("Barbara", "Liskov", "55 Substitution St", "Cambridge", "MA", "02139", "US"),
    ("Donald", "Knuth", "1 TeX Lane", "Palo Alto", "CA", "94301", "US"),
    ("Frances", "Allen", "88 Optimizer Blvd", "Peekskill", "NY", "10566", "US"),
    ("Ken", "Thompson", "6 Unix Pl", "Murray Hill", "NJ", "07974", "US"),
    ("Radia", "Perlman", "24 Spanning Tree Dr", "Redmond", "WA", "98052", "US"),
    ("Margaret", "Hamilton", "11 Apollo Way", "Boston", "MA", "02108", "US"),
    ("John", "Backus", "", "Ithaca", "NY", "14850", "US"),  # no address: enrichment material
    ("Leslie", "Lamport", "5 Paxos Sq", "Mountain View", "CA", "94040", "US"),
    ("Hedy", "Lamarr", "20 Frequency Hop", "Los Angeles", "CA", "90001", "US"),
    ("Tim", "Berners-Lee", "1 Web Row", "London", "", "SW1A 1AA", "GB"),  # international for a US printer
    ("Blocked", "Person", "1 Blocked Way", "Springfield", "IL", "62701", "US"),  # on the org's blocklist
]


@dataclass
class DemoResult:
    organization: Organization
    campaign: Campaign
    username: str
    password: str
    created_recipients: int


@transaction.atomic
def demo_create(*, username: str = "admin", password: str | None = None) -> DemoResult:
    """Create (or reuse) the demo data; always (re)sets the admin password.  Safe to run twice."""
    org, _ = Organization.objects.get_or_create(
        name=DEMO_ORG,
        defaults={"billing_customer_id": "cus_demo", "subscription_active": True, "recipient_cap": 1000},
    )
    BlocklistEntry.objects.get_or_create(
        organization=org, key="demo-blocked", defaults={"address1": "1 Blocked Way", "zip": "62701", "country": "US"}
    )
    campaign, _ = Campaign.objects.get_or_create(
        organization=org,
        name=DEMO_CAMPAIGN,
        defaults={"printer": "sandbox", "holdout_percent": Decimal("10"), "address_enrichment": True},
    )
    existing = set(campaign.recipients.values_list("natural_key", flat=True))
    new = [
        CampaignRecipient(
            campaign=campaign,
            natural_key=f"demo-{i:03d}",
            external_id=f"demo-{i:03d}",
            first_name=first,
            last_name=last,
            address1=address1,
            city=city,
            state=state,
            zip=zip_code,
            country=country,
            email=f"{first.lower()}.{last.lower()}@example.com",
        )
        for i, (first, last, address1, city, state, zip_code, country) in enumerate(AUDIENCE)
        if f"demo-{i:03d}" not in existing
    ]
    created = CampaignRecipient.objects.bulk_create(new)
    if not all(r.pk for r in created):  # SQLite < 3.35 / backends without RETURNING
        created = list(campaign.recipients.filter(natural_key__in=[r.natural_key for r in new]))
    recipients_record_created(recipients=created, actor=Actor("command:demo"), reason="demo audience")

    password = password or secrets.token_urlsafe(12)
    user_model = get_user_model()
    user, _ = user_model.objects.get_or_create(username=username, defaults={"email": f"{username}@example.com"})
    user.is_staff = True
    user.is_superuser = True
    user.set_password(password)
    user.save()
    return DemoResult(org, campaign, username, password, len(created))
