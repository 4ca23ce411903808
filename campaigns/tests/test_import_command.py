from __future__ import annotations

import csv
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from campaigns import sync
from campaigns.models import CampaignRecipient, RecipientTransition
from campaigns.tests.factories import CampaignFactory

pytestmark = pytest.mark.django_db
DATA = Path(__file__).parent / "data"
Status = CampaignRecipient.Status


def run(*args: str) -> str:
    out = StringIO()
    call_command("import_recipients", *args, "--no-progress", stdout=out)
    return out.getvalue()


def test_it_imports_qualifies_and_prints_the_report() -> None:
    campaign = CampaignFactory()
    out = run(str(campaign.pk), str(DATA / "basic.csv"))
    assert "Import of basic.csv: complete" in out
    assert "rows read 4, created 4, already imported 0" in out
    assert "skip reasons: NoAddress 2" in out
    assert "qualified: ProofingStaged 2" in out
    assert campaign.recipients.filter(status=Status.PROOFING_STAGED).count() == 2
    campaign.refresh_from_db()
    assert campaign.import_report["qualification"] == {"ProofingStaged": 2}
    history = RecipientTransition.objects.filter(recipient__campaign=campaign, to_status="ProofingStaged")
    assert set(history.values_list("source", flat=True)) == {"command:import_recipients"}


def test_no_qualify_leaves_valid_rows_pending() -> None:
    campaign = CampaignFactory()
    run(campaign.name, str(DATA / "basic.csv"), "--no-qualify")
    assert campaign.recipients.filter(status=Status.PENDING).count() == 2


def test_it_takes_a_column_mapping_and_a_default_country(tmp_path: Path) -> None:
    campaign = CampaignFactory()
    path = tmp_path / "custom.csv"
    path.write_text("Given,Family,Line 1,Code\nAda,Lovelace,1 Main St,62701\n", encoding="utf-8")
    run(
        str(campaign.pk),
        str(path),
        "--mapping",
        "first_name=Given,last_name=Family,address1=Line 1,zip=Code",
        "--default-country",
        "US",
    )
    r = campaign.recipients.get()
    assert (r.first_name, r.address1, r.zip, r.country) == ("Ada", "1 Main St", "62701", "US")


def test_the_dry_run_prints_outcomes_exports_them_and_writes_nothing(tmp_path: Path) -> None:
    campaign = CampaignFactory()
    export = tmp_path / "preview.csv"
    out = run(str(campaign.pk), str(DATA / "formula_cells.csv"), "--dry-run", "--export", str(export))
    # A name that starts like a formula is never printed (issue 11): the row is Skipped, in words.
    assert "Skipped: First name starts with “=” like a spreadsheet formula" in out
    assert "Dry run: nothing was written." in out
    assert campaign.recipients.count() == 0
    rows = list(csv.reader(export.open(encoding="utf-8")))
    assert rows[1][1].startswith("'=cmd")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["999999", "basic.csv"], "no such campaign"),
        (["{pk}", "nope.csv"], "no such file"),
        (["{pk}", "empty.csv"], "the file is empty: .*; nothing was imported"),
        (["{pk}", "basic.csv", "--mapping", "zap=Zip"], "unknown field 'zap'"),
    ],
)
def test_bad_input_is_a_command_error_with_a_clear_message(args: list[str], message: str) -> None:
    campaign = CampaignFactory()
    argv = [a.format(pk=campaign.pk) for a in args]
    argv[1] = str(DATA / argv[1])
    with pytest.raises(CommandError, match=message):
        run(*argv)


def test_the_progress_bar_does_not_disturb_the_report(capsys: pytest.CaptureFixture[str]) -> None:
    campaign = CampaignFactory()
    out = StringIO()
    call_command("import_recipients", str(campaign.pk), str(DATA / "basic.csv"), stdout=out)
    assert "created 4" in out.getvalue()
    assert "B/s" in capsys.readouterr().err  # tqdm counts bytes on stderr


def test_an_interrupted_import_keeps_whole_batches_and_says_how_to_continue(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    campaign = CampaignFactory()
    path = tmp_path / "big.csv"
    body = "".join(f"Pat{i},Doe,{i} Main St,62701,US\n" for i in range(30))
    path.write_text("first_name,last_name,address1,zip,country\n" + body, encoding="utf-8")

    real = sync._sync_batch
    calls = {"n": 0}

    def stop_on_second_batch(**kwargs: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # what SIGTERM becomes inside the command
        real(**kwargs)

    monkeypatch.setattr(sync, "_sync_batch", stop_on_second_batch)
    with pytest.raises(CommandError, match="interrupted: 10 recipients were created"):
        run(str(campaign.pk), str(path), "--batch-size", "10")
    campaign.refresh_from_db()
    assert campaign.import_report["status"] == "interrupted"
    monkeypatch.setattr(sync, "_sync_batch", real)
    out = run(str(campaign.pk), str(path), "--batch-size", "10")
    assert "created 20, already imported 10" in out
    assert campaign.recipients.count() == 30


def test_sigterm_during_an_import_becomes_a_clean_interrupt() -> None:
    import os
    import signal

    from campaigns.management.commands.import_recipients import _sigterm_as_interrupt

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt), _sigterm_as_interrupt():
        os.kill(os.getpid(), signal.SIGTERM)
    assert signal.getsignal(signal.SIGTERM) == before
