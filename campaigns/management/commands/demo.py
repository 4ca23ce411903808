from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.core.management.base import BaseCommand, CommandParser
from django.db.models import Count

from campaigns.demo import demo_create, demo_run
from campaigns.models import Campaign


class Command(BaseCommand):
    help = (
        "Create the demo orgs, campaigns, audiences and an admin user, run the pipeline on them "
        "(qualify, enrich, proof, bill, mail to the local printer simulator), print where to look, and exit."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", default="admin")
        parser.add_argument("--password", default=None, help="Default: a new random password, printed.")
        parser.add_argument("--url", default="http://127.0.0.1:8000", help="Where the admin will be served.")

    def handle(self, *args: Any, **options: Any) -> None:
        result = demo_create(username=options["username"], password=options["password"])
        reports = demo_run(result)
        url = options["url"].rstrip("/")
        for campaign in (result.campaign, result.unbillable_campaign):
            self.summary(campaign, url)
            for stage, note in reports[campaign.name].notes.items():
                self.stdout.write(f"  ({stage}: {note})")
        recipients = f"{url}/admin/campaigns/campaignrecipient/"
        tracking = result.tracking
        if tracking is not None and tracking.report is not None:
            self.stdout.write(
                self.style.SUCCESS(
                    f"The printer posted {tracking.posted} signed webhooks ({tracking.duplicates} delivered twice, "
                    f"{tracking.rejected} refused); processing applied {tracking.report.applied} status reports, "
                    f"recorded {tracking.report.ignored} late one(s) without moving a piece back, and moved "
                    f"{tracking.report.received} recipients to Received."
                )
            )
        self.stdout.write("")
        self.stdout.write(f"Admin:         {url}/admin/")
        self.stdout.write(f"Sample proofs: {url}/admin/campaigns/campaign/{result.campaign.pk}/proofs/")
        sent = {"campaign__id__exact": result.campaign.pk, "status__exact": "Sent"}
        self.stdout.write(f"In the mail:   {recipients}?{urlencode(sent)}")
        received = {"campaign__id__exact": result.campaign.pk, "status__exact": "Received"}
        self.stdout.write(f"Delivered:     {recipients}?{urlencode(received)}")
        refused = {"campaign__id__exact": result.campaign.pk, "status__exact": "Error"}
        self.stdout.write(f"To retry:      {recipients}?{urlencode(refused)}")
        self.stdout.write(f"Mailpieces:    {url}/admin/mailpieces/mailpiece/")
        self.stdout.write(f"Returned:      {url}/admin/mailpieces/mailpiece/?status__exact=Returned")
        self.stdout.write(f"Webhooks:      {url}/admin/mailpieces/inboundwebhook/")
        errors = {"campaign__id__exact": result.unbillable_campaign.pk, "status__exact": "Error"}
        self.stdout.write(f"Billing error: {recipients}?{urlencode(errors)}")
        self.stdout.write(f"Username:      {result.username}")
        self.stdout.write(f"Password:      {result.password}")

    def summary(self, campaign: Campaign, url: str) -> None:
        rows = (
            campaign.recipients.values("status", "skip_reason")
            .annotate(n=Count("id"))
            .order_by("status", "skip_reason")
        )
        total = sum(r["n"] for r in rows)
        self.stdout.write(
            self.style.SUCCESS(f"“{campaign}” of {campaign.organization}: {total} recipients, after the pipeline ran:")
        )
        for r in rows:
            reason = f" ({r['skip_reason']})" if r["skip_reason"] else ""
            self.stdout.write(f"  {r['status']}{reason}: {r['n']}")
