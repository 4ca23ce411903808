"""``manage.py import_recipients <campaign> <file.csv> [--mapping ...] [--update] [--dry-run]``."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from campaigns.audience import campaign_import_file, report_lines
from campaigns.dry_run import dry_run_columns_text, dry_run_text, dry_run_write_csv, recipients_dry_run_csv
from campaigns.importing import CsvReading, CsvSource, ImportFileError, mapping_parse
from campaigns.models import Campaign
from campaigns.sync import ImportReport
from common.fsm import Actor
from common.models import is_row_id


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM stops the import like Ctrl-C: the current batch rolls back, the
    committed ones stay, and the report is saved as "interrupted"."""

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, stop)
    except ValueError:  # not the main thread (e.g. called from a worker): leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class Command(BaseCommand):
    help = (
        "Import recipients from a CSV file into a campaign (validate, qualify, and look up missing addresses "
        "when the campaign enriches them), or preview with --dry-run."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("campaign", help="Campaign id or exact name")
        parser.add_argument("file", type=Path, help="CSV file, UTF-8, first line = column names")
        parser.add_argument(
            "--mapping",
            default="",
            help="Columns for fields, e.g. first_name=First,zip=Postcode (defaults: common names)",
        )
        parser.add_argument("--default-country", default="", help="Country for rows without one (e.g. US)")
        parser.add_argument(
            "--update",
            action="store_true",
            help="Rows matching recipients already imported replace their data and are checked again, "
            "while those recipients are Pending, Skipped or Blacklisted (not once in flight)",
        )
        parser.add_argument("--dry-run", action="store_true", help="Show what would happen per row; write nothing")
        parser.add_argument("--export", type=Path, help="With --dry-run: also write the per-row outcome to this CSV")
        parser.add_argument(
            "--no-qualify", action="store_true", help="Leave valid rows Pending (no qualification, no address lookups)"
        )
        parser.add_argument(
            "--batch-size", type=int, default=2000, help="Rows per batch, each committed on its own (default 2000)"
        )
        parser.add_argument("--no-progress", action="store_true", help="No progress bar")

    def handle(self, *args: Any, **options: Any) -> None:
        campaign = self.campaign(options["campaign"])
        path: Path = options["file"]
        if path.is_dir():
            raise CommandError(f"{path} is a folder: give the CSV file inside it")
        if not path.is_file():
            raise CommandError(f"{path}: no such file")
        if options["export"] is not None and not options["dry_run"]:
            raise CommandError("--export writes a dry run's per-row outcome: use it with --dry-run")
        try:
            path.open("rb").close()
        except OSError as exc:
            raise CommandError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
        if options["batch_size"] < 1:
            raise CommandError(f"--batch-size must be at least 1, not {options['batch_size']}")
        try:
            reading: CsvReading = {
                "source": path.name,
                "mapping": mapping_parse(options["mapping"]),
                "default_country": options["default_country"],
            }
        except ImportFileError as exc:
            raise CommandError(str(exc)) from exc
        actor = Actor("command:import_recipients")
        if options["dry_run"]:
            self.dry_run(campaign, path, reading, options, actor)
        else:
            self.run_import(campaign, path, reading, options, actor)

    def campaign(self, ref: str) -> Campaign:
        qs = Campaign.objects.select_related("organization")
        # "²" or an id beyond 64 bits is no campaign (PostgreSQL would refuse the query).
        pk = int(ref) if is_row_id(ref) else None
        found = list(qs.filter(pk=pk)) if pk is not None else []
        if not found:  # a campaign may be named "2024"
            found = list(qs.filter(name=ref)[:2])
        if len(found) != 1:
            raise CommandError(
                f"campaign {ref!r}: " + ("no such campaign" if not found else "several match; use the id")
            )
        return found[0]

    def run_import(
        self, campaign: Campaign, path: Path, reading: CsvReading, options: dict[str, Any], actor: Actor
    ) -> None:
        bar = None if options["no_progress"] else tqdm(total=path.stat().st_size, unit="B", unit_scale=True)

        def progress(source: CsvSource, report: ImportReport) -> None:
            if bar is not None:
                bar.update(source.bytes_read - bar.n)

        try:
            with path.open("rb") as stream, _sigterm_as_interrupt():
                report = campaign_import_file(
                    campaign=campaign,
                    file=stream,
                    actor=actor,
                    qualify=not options["no_qualify"],
                    update=options["update"],
                    batch_size=options["batch_size"],
                    progress=progress,
                    **reading,
                )
        except ImportFileError as exc:
            raise CommandError(f"{path.name}: {exc}; nothing was imported") from exc
        except KeyboardInterrupt as exc:
            campaign.refresh_from_db(fields=["import_report"])
            done = campaign.import_report.get("created", 0)
            raise CommandError(
                f"interrupted: {done} recipients were created (whole batches only); "
                "run the same command again to import the rest"
            ) from exc
        finally:
            if bar is not None:
                bar.close()
        for line in report_lines(report.as_dict()):
            self.stdout.write(line)

    def dry_run(
        self, campaign: Campaign, path: Path, reading: CsvReading, options: dict[str, Any], actor: Actor
    ) -> None:
        try:
            with path.open("rb") as stream:
                result = recipients_dry_run_csv(
                    campaign=campaign, stream=stream, actor=actor, update=options["update"], **reading
                )
        except ImportFileError as exc:
            raise CommandError(f"{path.name}: {exc}") from exc
        for line in [*dry_run_text(result), *dry_run_columns_text(result)]:
            self.stdout.write(line)
        if options["export"]:
            try:
                with options["export"].open("w", newline="", encoding="utf-8") as out:
                    dry_run_write_csv(result, out)
            except OSError as exc:
                raise CommandError(f"--export {options['export']}: cannot be written ({exc.strerror or exc})") from exc
            self.stdout.write(f"Per-row outcome written to {options['export']}")
        self.stdout.write("Dry run: nothing was written.")
