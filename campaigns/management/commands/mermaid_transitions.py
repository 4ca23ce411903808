from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from campaigns.models import CampaignRecipient
from common.diagrams import mermaid
from mailpieces.models import Mailpiece

BEGIN = "<!-- BEGIN GENERATED: manage.py mermaid_transitions -->"
END = "<!-- END GENERATED -->"


def render(only: str | None = None) -> str:
    machines = {"recipient": CampaignRecipient, "mailpiece": Mailpiece}
    return "".join(
        f"%% {model.__name__}.status\n```mermaid\n{mermaid(model)}```\n"
        for name, model in machines.items()
        if only in (None, name)
    )


class Command(BaseCommand):
    help = "Print the recipient and mailpiece state machines as mermaid text (from the code)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--model", choices=["recipient", "mailpiece"], help="Only this machine.")
        parser.add_argument("--write", metavar="FILE", help="Replace the generated block of FILE instead.")

    def handle(self, *args: Any, **options: Any) -> None:
        text = render(options["model"])
        if not options["write"]:
            self.stdout.write(text, ending="")
            return
        path = Path(options["write"])
        try:
            doc = path.read_text()
        except OSError as exc:  # missing, a folder, unreadable
            raise CommandError(f"{path}: cannot be read ({exc.strerror or exc})") from None
        if BEGIN not in doc or END not in doc:
            raise CommandError(f"{path} has no {BEGIN} … {END} block to replace")
        pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
        path.write_text(pattern.sub(lambda _: f"{BEGIN}\n{text}{END}", doc))
        self.stdout.write(f"updated {path}")
