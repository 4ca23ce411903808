from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db.models import Count

from campaigns.demo import demo_create


class Command(BaseCommand):
    help = "Create the demo org, campaign, audience and an admin user, print where to look, and exit."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", default="admin")
        parser.add_argument("--password", default=None, help="Default: a new random password, printed.")
        parser.add_argument("--url", default="http://127.0.0.1:8000", help="Where the admin will be served.")

    def handle(self, *args: Any, **options: Any) -> None:
        result = demo_create(username=options["username"], password=options["password"])
        url = options["url"].rstrip("/")
        rows = (
            result.campaign.recipients.values("status", "skip_reason")
            .annotate(n=Count("id"))
            .order_by("status", "skip_reason")
        )
        total = sum(r["n"] for r in rows)
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo campaign “{result.campaign}” of {result.organization}: "
                f"{total} recipients ({result.created_recipients} new), imported, qualified and enriched."
            )
        )
        for r in rows:
            reason = f" ({r['skip_reason']})" if r["skip_reason"] else ""
            self.stdout.write(f"  {r['status']}{reason}: {r['n']}")
        self.stdout.write("")
        self.stdout.write(f"Admin:      {url}/admin/")
        self.stdout.write(f"Recipients: {url}/admin/campaigns/campaignrecipient/")
        self.stdout.write(f"Username:   {result.username}")
        self.stdout.write(f"Password:   {result.password}")
