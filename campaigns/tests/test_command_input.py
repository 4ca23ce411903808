"""Bad input and Ctrl-C on the management commands, as a review found them:
a clear ``CommandError`` (exit code 1, no traceback), checked before any work,
and output that agrees with the database."""

from __future__ import annotations

import datetime as dt
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from campaigns.management.commands import run_pipeline
from campaigns.models import CampaignRecipient, ErrorMessages
from campaigns.tests.factories import CampaignFactory, CampaignRecipientFactory
from campaigns.tests.test_mailing_stage import ready_campaign
from mailpieces.models import InboundWebhook, Mailpiece
from mailpieces.tests.factories import MailpieceFactory
from printers import conftest as printer_fixtures

pytestmark = pytest.mark.django_db
S = CampaignRecipient.Status
simulator = printer_fixtures.simulator
TOO_BIG = "99999999999999999999"  # past a 64-bit id: SQLite raised OverflowError


def run(name: str, *args: str) -> str:
    out = StringIO()
    call_command(name, *args, stdout=out)
    return out.getvalue()


# ---------------------------------------------------------------- checked before any work
@pytest.mark.parametrize("name", ["run_pipeline", "process_webhooks"])
def test_a_negative_interval_is_refused_before_a_pass_runs(name: str) -> None:
    """time.sleep refused it only after a whole pass had run and committed."""
    CampaignRecipientFactory.create_batch(2)  # Pending: a pass would qualify them
    with pytest.raises(CommandError, match="--interval must be 0 or more seconds"):
        run(name, "--interval", "-1", "--no-progress")
    assert CampaignRecipient.objects.filter(status=S.PENDING).count() == 2


@pytest.mark.parametrize(
    "args",
    [
        ["retry_recipients", "--campaign", TOO_BIG],
        ["revalidate_recipients", "--campaign", TOO_BIG],
        ["run_pipeline", "--once", "--campaign", TOO_BIG],
        ["run_pipeline", "--once", "--campaign", "0"],
    ],
)
def test_a_campaign_id_past_the_databases_integers_is_no_campaign(args: list[str]) -> None:
    with pytest.raises(CommandError, match=r"^No campaign with id \d+\.$"):
        run(*args)


def test_reprocess_refuses_a_date_past_the_calendar_in_words() -> None:
    with pytest.raises(CommandError, match="out of the range of dates"):
        run("reprocess_webhooks", "--printer", "sandbox", "--since", "2026-01-01", "--until", "9999-12-31T23:59-05:00")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--stale-days", "99999999"], "--stale-days must be at most 36500 days"),
        (["--max-age-days", "99999999"], "--max-age-days must be at most 36500 days"),
        (["--stale-days", "5", "--max-age-days", "2"], "no piece can be both"),
    ],
)
def test_refresh_refuses_days_it_cannot_use(args: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=message):
        run("refresh_mailpieces", *args, "--no-progress")


def test_import_refuses_export_without_dry_run_a_folder_and_an_unknown_country(tmp_path: Path) -> None:
    campaign = CampaignFactory()
    data = tmp_path / "one.csv"
    data.write_text("first_name,address1,city,state,zip\nAda,1 Main St,Austin,TX,78701\n")
    with pytest.raises(CommandError, match="use it with --dry-run"):
        run("import_recipients", str(campaign.pk), str(data), "--export", str(tmp_path / "out.csv"))
    with pytest.raises(CommandError, match="is a folder"):
        run("import_recipients", str(campaign.pk), str(tmp_path))
    with pytest.raises(CommandError, match="'ZZ' is not a recognised country"):
        run("import_recipients", str(campaign.pk), str(data), "--default-country", "ZZ", "--no-progress")
    assert campaign.recipients.count() == 0
    assert not (tmp_path / "out.csv").exists()
    run("import_recipients", str(campaign.pk), str(data), "--default-country", "US", "--no-progress")
    assert campaign.recipients.get().country == "US"


# ---------------------------------------------------------------- Ctrl-C
def _interrupt(*args: Any, **kwargs: Any) -> Any:
    raise KeyboardInterrupt


def test_ctrl_c_in_a_pipeline_pass_says_what_happens_to_the_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    CampaignRecipientFactory()
    monkeypatch.setattr(run_pipeline, "campaign_advance", _interrupt)
    with pytest.raises(CommandError, match=r"^Interrupted: .*lease runs out.*next run takes them"):
        run("run_pipeline", "--once", "--no-progress")


def test_ctrl_c_in_processing_webhooks_says_the_batches_applied_are_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    from mailpieces.management.commands import process_webhooks

    monkeypatch.setattr(process_webhooks, "webhooks_process", _interrupt)
    with pytest.raises(CommandError, match=r"^Interrupted: the batches applied are kept"):
        run("process_webhooks", "--once", "--no-progress")


def test_ctrl_c_in_reprocessing_says_to_run_it_again(monkeypatch: pytest.MonkeyPatch) -> None:
    from mailpieces.management.commands import reprocess_webhooks

    InboundWebhook.objects.create(
        printer="sandbox", event_id="e1", body=b"{}", received_at=timezone.now(), state=InboundWebhook.State.PROCESSED
    )
    monkeypatch.setattr(reprocess_webhooks, "webhooks_reprocess", _interrupt)
    since = (timezone.now() - dt.timedelta(days=1)).date().isoformat()
    with pytest.raises(CommandError, match=r"^Interrupted: the batches done are kept .*run the same command again"):
        run("reprocess_webhooks", "--printer", "sandbox", "--since", since, "--no-progress")


@pytest.mark.parametrize(
    ("dry", "kept"), [(False, "the batch under way was rolled back"), (True, "nothing was written")]
)
def test_ctrl_c_in_a_backfill_says_how_far_it_got(monkeypatch: pytest.MonkeyPatch, dry: bool, kept: str) -> None:
    from campaigns.management.commands import retry_recipients

    campaign = CampaignFactory()
    for _ in range(3):
        CampaignRecipientFactory(campaign=campaign, status=S.ERROR, error_message=ErrorMessages.FAILED_TO_MAKE_PROOF)
    calls = []

    def second_batch_interrupted(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    original = retry_recipients.retry_batch
    monkeypatch.setattr(retry_recipients, "retry_batch", second_batch_interrupted)
    args = ["retry_recipients", "--campaign", str(campaign.pk), "--batch-size", "2", "--no-progress"]
    with pytest.raises(CommandError, match=rf"^Interrupted: retry_recipients stopped after 2 of 3 row\(s\), .*{kept}"):
        run(*args, *(["--dry-run"] if dry else []))


# ---------------------------------------------------------------- output that agrees with the database
def test_run_pipeline_counts_each_mailed_row_once(simulator: Any) -> None:
    """The mailing stage reports Proofed → SendingStaged and then Sent; the
    summary added both ("mailing 1800" for 900 rows)."""
    campaign, _rows = ready_campaign(4)
    out = run("run_pipeline", "--once", "--no-progress", "--campaign", str(campaign.pk))
    assert campaign.recipients.filter(status=S.SENT).count() == 4
    assert f"“{campaign}”: mailing 4." in out


def test_rows_moved_leaves_out_what_is_not_a_row_arriving() -> None:
    moved = {"SendingStaged": 5, "Sent": 4, "retry_later": 1, "lost_claim": 2, "Scheduled": 3}
    assert run_pipeline.rows_moved("mailing", moved) == 4 + 3
    assert run_pipeline.rows_moved("proofing", {"Proofed": 2, "reproof": 1, "released": 1}) == 2


def test_refresh_says_a_printer_was_left_for_the_limit_not_that_nothing_was_stale(simulator: Any) -> None:
    old = timezone.now() - dt.timedelta(days=10)
    for kind in ("sandbox", "lob"):
        for _ in range(2):
            piece = MailpieceFactory(printer=kind)
            Mailpiece.objects.filter(pk=piece.pk).update(created=old, updated=old)
    text = run("refresh_mailpieces", "--stale-days", "7", "--limit", "2", "--dry-run", "--no-progress")
    assert "the --limit of 2 was used up first" in text
    assert "nothing to ask" not in text


def test_engineers_tools_say_a_missing_file_or_database_in_words(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match=r"cannot be read \(No such file or directory\)"):
        run("mermaid_transitions", "--write", str(tmp_path / "missing.md"))
    with pytest.raises(CommandError, match=r"cannot be read \(Is a directory\)"):
        run("mermaid_transitions", "--write", str(tmp_path))
    with pytest.raises(CommandError, match="No database 'nope' in the settings: use one of default"):
        run("setup_groups", "--database", "nope")
