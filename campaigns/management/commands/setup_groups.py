"""``manage.py setup_groups``: create or bring up to date the Ops and
Read-only staff groups (common/permissions.py, docs/ops.md).

The data migration ``campaigns.0007_ops_groups`` runs the same function once;
run this after adding models (their view permissions join both groups) or to
undo permissions someone gave a group by hand.  Safe to run any time.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS, connections, transaction

from common.permissions import groups_setup


class Command(BaseCommand):
    help = "Create or update the Ops and Read-only groups and the recipient action permissions."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS, help="Database alias (default: default).")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["database"] not in connections:
            raise CommandError(
                f"No database {options['database']!r} in the settings: use one of {', '.join(connections)}."
            )
        with transaction.atomic(using=options["database"]):
            changes = groups_setup(using=options["database"])
        for change in changes:
            self.stdout.write(change.summary())
            if options["verbosity"] >= 2:
                for code in change.added:
                    self.stdout.write(f"  + {code}")
                for code in change.removed:
                    self.stdout.write(f"  - {code}")
