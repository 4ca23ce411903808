"""The demo data set: one org, one campaign on the sandbox printer, a small
audience with every kind of person the pipeline meets, and an admin user."""

from __future__ import annotations

import csv
import io
import secrets
from dataclasses import dataclass
from decimal import Decimal

from django.contrib.auth import get_user_model

from campaigns.audience import campaign_import_file
from campaigns.models import BlocklistEntry, Campaign, Organization
from common.fsm import Actor

DEMO_ORG = "Demo Coffee Roasters"
DEMO_CAMPAIGN = "Winter welcome-back postcards"

# (first, last, address1, city, state, zip, country): invented people, with
# one of each case the pipeline meets.
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
    ("Leslie", "Lamport", "5 Paxos Sq", "Mountain View", "CA", "94040", "US"),
    ("Hedy", "Lamarr", "20 Frequency Hop", "Los Angeles", "CA", "90001", "US"),
    ("Tim", "Berners-Lee", "1 Web Row", "London", "", "SW1A 1AA", "GB"),
    ("John", "Backus", "", "", "", "", "US"),  # no address: enrichment finds one
    ("Nomatch", "Person", "", "", "", "", "US"),  # no address: enrichment finds none
    ("Jean", "Sammet", "4 Rue Cobol", "Paris", "", "75001", "FR"),  # the sandbox does not mail to France
    ("Bl*nk", "", "7 Star Ct", "Denver", "CO", "80202", "US"),  # asterisk in the name
    ("Blocked", "Person", "1 Blocked Way", "Springfield", "IL", "62701", "US"),  # on the org's blocklist
]


def audience_csv() -> io.BytesIO:
    """``AUDIENCE`` as the CSV file a user would upload."""
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["external_id", "first_name", "last_name", "address1", "city", "state", "zip", "country", "email"])
    for i, (first, last, address1, city, state, zip_code, country) in enumerate(AUDIENCE):
        email = f"{first.lower()}.{last.lower()}@example.com".replace("*", "")
        writer.writerow([f"demo-{i:03d}", first, last, address1, city, state, zip_code, country, email])
    return io.BytesIO(text.getvalue().encode())


@dataclass
class DemoResult:
    organization: Organization
    campaign: Campaign
    username: str
    password: str
    created_recipients: int


def demo_create(*, username: str = "admin", password: str | None = None) -> DemoResult:
    """Create (or reuse) the demo data; always (re)sets the admin password.  Safe to run twice."""
    org, _ = Organization.objects.get_or_create(
        name=DEMO_ORG,
        defaults={"billing_customer_id": "cus_demo", "subscription_active": True, "recipient_cap": 1000},
    )
    if not org.blocklist.filter(address1="1 Blocked Way").exists():
        BlocklistEntry(organization=org, address1="1 Blocked Way", zip="62701", country="US", reason="asked us").save()
    campaign, _ = Campaign.objects.get_or_create(
        organization=org,
        name=DEMO_CAMPAIGN,
        defaults={
            "printer": "sandbox",
            "holdout_percent": Decimal("10"),
            # A fixed seed: every demo shows the same control group.
            "holdout_seed": "demo-winter",
            "address_enrichment": True,
        },
    )
    # The audience goes in as a file through the same entry point as an
    # upload in the admin: read, sync, qualify, enrich, qualify.
    report = campaign_import_file(
        campaign=campaign, file=audience_csv(), actor=Actor("command:demo"), source="demo audience"
    )

    password = password or secrets.token_urlsafe(12)
    user_model = get_user_model()
    user, _ = user_model.objects.get_or_create(username=username, defaults={"email": f"{username}@example.com"})
    user.is_staff = True
    user.is_superuser = True
    user.set_password(password)
    user.save()
    return DemoResult(org, campaign, username, password, report.created)
