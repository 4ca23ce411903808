"""The demo data set: one org, one campaign on the sandbox printer, a small
audience with every kind of person the pipeline meets, and an admin user;
plus a second org whose billing is not set up, so its recipients show the
spec's billing error.  ``demo_run`` then runs the real pipeline on both."""

from __future__ import annotations

import csv
import io
import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from django.conf import settings
from django.contrib.auth import get_user_model

from campaigns.audience import campaign_import_file
from campaigns.models import BlocklistEntry, Campaign, Organization, ProofTemplate
from campaigns.pipeline.runner import AdvanceReport, campaign_advance
from campaigns.proofing.design import campaign_approval, campaign_approve_proofs
from common.fsm import Actor

if TYPE_CHECKING:
    from mailpieces.webhooks.processing import ProcessReport
    from printers.simulator import Simulator

DEMO_ORG = "Demo Coffee Roasters"
DEMO_CAMPAIGN = "Winter welcome-back postcards"
DEMO_TEMPLATE = "Winter welcome-back"
UNBILLABLE_ORG = "Lapsed Tea Traders"
UNBILLABLE_CAMPAIGN = "Spring tasting invitations"

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
    # The printer refuses this address (the sandbox refuses any "Reject" in it): an
    # Error to practise on (edit the address, then "Retry sending").
    ("Charles", "Babbage", "2 Reject Row", "Portland", "OR", "97201", "US"),
]


def audience_csv(audience: Sequence[tuple[str, ...]] | None = None) -> io.BytesIO:
    """``audience`` (default ``AUDIENCE``) as the CSV file a user would upload."""
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["external_id", "first_name", "last_name", "address1", "city", "state", "zip", "country", "email"])
    for i, (first, last, address1, city, state, zip_code, country) in enumerate(audience or AUDIENCE):
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
    unbillable_campaign: Campaign
    tracking: Tracking | None = None


def demo_create(*, username: str = "admin", password: str | None = None) -> DemoResult:
    """Create (or reuse) the demo data; always (re)sets the admin password.  Safe to run twice."""
    org, _ = Organization.objects.get_or_create(
        name=DEMO_ORG,
        defaults={
            "billing_customer_id": "cus_demo",
            "subscription_active": True,
            "billing_subscription_item_id": "si_demo",
            "billing_price_id": settings.BILLING["price_id"],
            "recipient_cap": 1000,
        },
    )
    template, _ = ProofTemplate.objects.get_or_create(name=DEMO_TEMPLATE)
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
            "proof_template": template,
            "discount_enabled": True,
            "discount_prefix": "WINTER",
            "discount_value": "15%",
        },
    )
    # The audience goes in as a file through the same entry point as an
    # upload in the admin: read, sync, qualify, enrich, qualify.
    report = campaign_import_file(
        campaign=campaign, file=audience_csv(), actor=Actor("command:demo"), source="demo audience"
    )

    # An org that signed up but never subscribed: nothing of it may be proofed.
    lapsed, _ = Organization.objects.get_or_create(name=UNBILLABLE_ORG, defaults={"billing_customer_id": "cus_lapsed"})
    unbillable, _ = Campaign.objects.get_or_create(
        organization=lapsed, name=UNBILLABLE_CAMPAIGN, defaults={"printer": "sandbox", "holdout_seed": "demo-spring"}
    )
    campaign_import_file(
        campaign=unbillable,
        file=audience_csv(AUDIENCE[:4]),
        actor=Actor("command:demo"),
        source="demo audience (unbillable org)",
    )

    password = password or secrets.token_urlsafe(12)
    user_model = get_user_model()
    user, _ = user_model.objects.get_or_create(username=username, defaults={"email": f"{username}@example.com"})
    user.is_staff = True
    user.is_superuser = True
    user.set_password(password)
    user.save()
    return DemoResult(org, campaign, username, password, report.created, unbillable)


def demo_run(result: DemoResult) -> dict[str, AdvanceReport]:
    """Run the pipeline on the demo campaigns as the workers would: the samples
    are proofed, the demo user approves them (a person does this in the admin,
    on the campaign's "Sample proofs" page), the rest is proofed, and every
    card is mailed to the sandbox printer, served for the run by the local
    printer simulator.  The unbillable org's recipients end in Error with the
    spec's billing message."""
    actor = Actor("command:demo")
    reports = {}
    with sandbox_simulator() as sim:
        for campaign in (result.campaign, result.unbillable_campaign):
            reports[campaign.name] = campaign_advance(campaign.pk, actor=actor)
        if campaign_approval(result.campaign) is None:
            user = get_user_model().objects.get(username=result.username)
            campaign_approve_proofs(campaign=result.campaign, user=user)
            reports[result.campaign.name] = campaign_advance(result.campaign.pk, actor=actor)
        result.tracking = demo_track(sim, result.campaign)
    return reports


# Every RETURN_EVERY-th piece comes back to sender instead of being delivered.
RETURN_EVERY = 5
WEBHOOK_PATH = "/webhooks/sandbox/"


@dataclass
class Tracking:
    """What the printer reported in the demo and what became of it."""

    posted: int = 0
    rejected: int = 0
    duplicates: int = 0  # deliveries of a webhook already received
    report: ProcessReport | None = None


def demo_track(sim: Simulator, campaign: Campaign) -> Tracking:
    """The printer reports each piece's progress as printers do: signed
    webhooks posted to our own endpoint (through the whole Django stack: URL,
    signature check, inbox), one delivered twice and one out of order, every
    fifth piece returned to sender; the inbox is processed as the 15-second
    schedule would, then one late report arrives."""
    from django.test import Client

    from mailpieces.models import InboundWebhook, Mailpiece
    from mailpieces.webhooks.processing import webhooks_process

    client = Client()

    def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
        extra = {k: v for k, v in headers.items() if k.lower() != "content-type"}
        kind = headers.get("Content-Type", "application/json")
        response = client.post(url, data=body, content_type=kind, headers=extra)
        return response.status_code, response.content.decode("utf-8", "replace")

    lifecycle = ["Received", "Producing", "HandedOver", "InTransit", "LocalDelivery", "Delivered"]
    returned = ["Received", "Producing", "HandedOver", "InTransit", "Returned"]
    steps, late = [], []
    ids = Mailpiece.objects.filter(recipient__campaign=campaign, printer="sandbox").order_by("pk")
    # Pieces this run mailed (a second demo run's simulator knows only its own).
    mailed = [pid for pid in ids.values_list("printer_id", flat=True) if sim.piece("sandbox", pid) is not None]
    for i, printer_id in enumerate(mailed):
        if i % RETURN_EVERY == RETURN_EVERY - 1:
            steps += sim.timeline("sandbox", printer_id, returned)
        elif i == 0:  # LocalDelivery arrives after Delivered was applied: recorded, ignored
            timeline = sim.timeline("sandbox", printer_id, lifecycle)
            steps += [s for s in timeline if s.status != "LocalDelivery"]
            late += [s for s in timeline if s.status == "LocalDelivery"]
        elif i == 1:  # InTransit is delivered twice: recorded once
            steps += sim.timeline("sandbox", printer_id, lifecycle, duplicates=[3])
        else:
            steps += sim.timeline("sandbox", printer_id, lifecycle)
    before = InboundWebhook.objects.count()
    deliveries = sim.fire_webhooks(WEBHOOK_PATH, steps, send=post)
    report = webhooks_process()
    deliveries += sim.fire_webhooks(WEBHOOK_PATH, late, send=post)
    report.add(webhooks_process())
    rejected = sum(1 for d in deliveries if d.status_code >= 300)
    stored = InboundWebhook.objects.count() - before
    return Tracking(
        posted=len(deliveries), rejected=rejected, duplicates=len(deliveries) - rejected - stored, report=report
    )


@contextmanager
def sandbox_simulator() -> Iterator[Simulator]:
    """The local printer simulator, serving the sandbox printer for the demo's
    run (the demo's only printer), then stopped."""
    from printers.simulator import Simulator

    conf = settings.PRINTERS_CONF["sandbox"]
    sim = Simulator(secrets={"sandbox": str(conf.get("webhook_secret") or "")}).start()
    before = conf.get("base_url")
    conf["base_url"] = sim.url("sandbox")
    try:
        yield sim
    finally:
        conf["base_url"] = before
        sim.stop()
