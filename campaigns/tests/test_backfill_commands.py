"""``manage.py retry_recipients`` and ``manage.py revalidate_recipients``:
thin, batched callers of the admin's services."""

from __future__ import annotations

import logging
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from campaigns.management.commands import _backfill, retry_recipients
from campaigns.models import CampaignRecipient, ErrorMessages, RecipientTransition
from campaigns.tests.factories import BlocklistEntryFactory, CampaignFactory, CampaignRecipientFactory

pytestmark = pytest.mark.django_db
S = CampaignRecipient.Status
E = ErrorMessages


def run(name: str, *args: str) -> list[str]:
    out = StringIO()
    call_command(name, *args, stdout=out)
    return out.getvalue().splitlines()


def error_row(campaign, message: str, *, proof: bool, **extra):
    return CampaignRecipientFactory(
        campaign=campaign,
        status=S.ERROR,
        error_message=message,
        error_detail="it broke",
        proof_url="proofs/front.png" if proof else "",
        **extra,
    )


@pytest.fixture
def errors():
    """One campaign's Error rows of both stages, one Error row no stage
    retries, and a row already Sent."""
    campaign = CampaignFactory()
    rows = {
        "proof": error_row(campaign, E.FAILED_TO_MAKE_PROOF, proof=False),
        "billing_proofing": error_row(campaign, E.BILLING_NOT_READY, proof=False),
        "printer": error_row(campaign, E.FAILED_SUBMISSION_TO_PRINTER, proof=True, first_attempt_at=timezone.now()),
        "billing_mailing": error_row(campaign, E.BILLING_NOT_READY, proof=True),
        "unknown": error_row(campaign, "", proof=False),
        "sent": CampaignRecipientFactory(campaign=campaign, status=S.SENT, proof_url="proofs/front.png"),
    }
    return campaign, rows


def status_of(row: CampaignRecipient) -> str:
    row.refresh_from_db()
    return row.status


# --- retry_recipients -------------------------------------------------------------------


def test_retry_sends_each_stage_s_errors_back_to_its_own_stage(errors):
    campaign, rows = errors
    lines = run("retry_recipients", "--campaign", str(campaign.pk), "--batch-size", "2")
    assert lines == [
        "Retry from proofing: 2 sent back to proofing.",
        "Retry sending: 2 sent back to mailing; 1 not eligible: 1 not a mailing error.",
        "Total: 4 retried (1 under a new key), 1 not eligible: 1 not a proofing or mailing error.",
    ]
    assert {name: status_of(r) for name, r in rows.items()} == {
        "proof": S.PROOFING_STAGED,
        "billing_proofing": S.PROOFING_STAGED,
        "printer": S.SENDING_STAGED,
        "billing_mailing": S.SENDING_STAGED,
        "unknown": S.ERROR,
        "sent": S.SENT,
    }
    printer = rows["printer"]
    assert (printer.submission_gen, printer.error_message, printer.error_detail) == (1, "", "")
    history = RecipientTransition.objects.filter(from_status=S.ERROR)
    assert set(history.values_list("source", flat=True)) == {"command:retry_recipients"}
    assert set(history.values_list("reason", flat=True)) == {"ops retry: proofing", "ops retry: mailing"}
    assert history.count() == 4


def test_retry_twice_retries_nothing_the_second_time(errors):
    _campaign, _rows = errors
    run("retry_recipients")
    logged = RecipientTransition.objects.count()
    assert run("retry_recipients") == [
        "Retry from proofing: 0 sent back to proofing.",
        "Retry sending: 0 sent back to mailing; 1 not eligible: 1 not a mailing error.",
        "Total: 0 retried, 1 not eligible: 1 not a proofing or mailing error.",
    ]
    assert RecipientTransition.objects.count() == logged


def test_dry_run_counts_what_a_run_would_do_and_writes_nothing(errors):
    _campaign, rows = errors
    before = {name: status_of(r) for name, r in rows.items()}
    lines = run("retry_recipients", "--dry-run", "--batch-size", "1")
    assert lines == [
        "Dry run: nothing was written. A run now would do this:",
        "Retry from proofing: 2 sent back to proofing.",
        "Retry sending: 2 sent back to mailing; 1 not eligible: 1 not a mailing error.",
        "Total: 4 retried (1 under a new key), 1 not eligible: 1 not a proofing or mailing error.",
    ]
    assert {name: status_of(r) for name, r in rows.items()} == before
    assert not RecipientTransition.objects.exists()
    assert rows["printer"].submission_gen == 0
    # The real run then does exactly what the dry run said.
    assert run("retry_recipients")[-1] == lines[-1]


def test_one_stage_only_prints_the_admin_s_message_for_it(errors):
    _campaign, rows = errors
    assert run("retry_recipients", "--stage", "mailing") == [
        "Retry sending: 2 sent back to mailing; 3 not eligible: 3 not a mailing error.",
        "Total: 2 retried (1 under a new key), 3 not eligible: 3 not a mailing error.",
    ]
    assert status_of(rows["proof"]) == S.ERROR
    assert run("retry_recipients", "--stage", "proofing") == [
        "Retry from proofing: 2 sent back to proofing; 1 not eligible: 1 not a proofing error.",
        "Total: 2 retried, 1 not eligible: 1 not a proofing error.",
    ]
    assert status_of(rows["proof"]) == S.PROOFING_STAGED


def test_the_selection_options(errors):
    campaign, rows = errors
    other = error_row(CampaignFactory(), E.FAILED_TO_MAKE_PROOF, proof=False)
    lines = run("retry_recipients", "--campaign", str(campaign.pk), "--error-message", E.BILLING_NOT_READY)
    assert lines[-1] == "Total: 2 retried."
    assert status_of(rows["billing_proofing"]) == S.PROOFING_STAGED
    assert status_of(rows["billing_mailing"]) == S.SENDING_STAGED
    assert status_of(rows["proof"]) == S.ERROR
    assert status_of(other) == S.ERROR
    # A status other than Error selects rows only to count them as not eligible.
    assert run("retry_recipients", "--status", "Sent")[-1] == "Total: 0 retried, 1 not eligible: 1 already Sent."
    assert run("retry_recipients", "--campaign", str(other.campaign_id))[-1] == "Total: 1 retried."
    assert status_of(rows["proof"]) == S.ERROR
    assert status_of(other) == S.PROOFING_STAGED


def test_nothing_selected_says_so():
    assert run("retry_recipients") == ["No recipients match."]
    assert run("revalidate_recipients", "--dry-run") == [
        "Dry run: nothing was written. A run now would do this:",
        "No recipients match.",
    ]


@pytest.mark.parametrize("command", ["retry_recipients", "revalidate_recipients"])
def test_bad_options_are_refused_in_words(command):
    campaign = CampaignFactory()
    with pytest.raises(CommandError, match=rf"^No campaign with id {campaign.pk + 1}, {campaign.pk + 2}\.$"):
        run(
            command,
            "--campaign",
            str(campaign.pk),
            "--campaign",
            str(campaign.pk + 2),
            "--campaign",
            str(campaign.pk + 1),
        )
    with pytest.raises(CommandError, match="--status 'Eror' is not one of the valid values") as exc:
        run(command, "--status", "Eror")
    assert "\n  Error\n" in str(exc.value)
    with pytest.raises(CommandError, match="--batch-size must be at least 1"):
        run(command, "--batch-size", "0")


def test_an_error_message_not_in_the_spec_lists_the_valid_ones():
    with pytest.raises(CommandError) as exc:
        run("retry_recipients", "--error-message", "Failed submission to printer")  # wrong case
    text = str(exc.value)
    assert text.startswith("--error-message 'Failed submission to printer' is not one of the valid values")
    for message in E.all().values():
        assert f"\n  {message}" in text


def test_each_batch_is_one_service_call_of_at_most_batch_size_rows(errors, monkeypatch):
    calls: list[tuple[str, int]] = []
    for name in ("recipients_retry_proofing", "recipients_retry_sending"):
        real = getattr(retry_recipients, name)

        def spy(*, queryset, actor, real=real, name=name):
            calls.append((name, queryset.count()))
            assert actor.source == "command:retry_recipients"
            return real(queryset=queryset, actor=actor)

        monkeypatch.setattr(retry_recipients, name, spy)
    run("retry_recipients", "--batch-size", "2")
    # 5 Error rows: batches of 2, 2 and 1; the mailing stage gets what proofing left.
    assert [n for name, n in calls if name == "recipients_retry_proofing"] == [2, 2, 1]
    assert sum(n for name, n in calls if name == "recipients_retry_sending") == 3


def test_progress_is_logged_when_not_on_a_terminal(errors, caplog):
    with caplog.at_level(logging.INFO, logger=_backfill.__name__):
        run("retry_recipients", "--batch-size", "3")
    assert [r.getMessage() for r in caplog.records if r.name == _backfill.__name__] == [
        "retry_recipients: 3 of 5 row(s): 3 retried",
        "retry_recipients: 5 of 5 row(s): 1 retried",
    ]


def test_a_terminal_gets_a_progress_bar(errors, monkeypatch):
    bars = []

    class Bar:
        def __init__(self, **kwargs):
            self.kwargs, self.n = kwargs, 0
            bars.append(self)

        def update(self, n):
            self.n += n

        def close(self):
            self.closed = True

    monkeypatch.setattr(_backfill, "tqdm", Bar)
    monkeypatch.setattr(_backfill.sys.stdout, "isatty", lambda: True, raising=False)
    run("retry_recipients", "--batch-size", "2")
    (bar,) = bars
    assert (bar.kwargs["total"], bar.kwargs["disable"], bar.n, bar.closed) == (5, False, 5, True)
    run("retry_recipients", "--no-progress")
    assert bars[1].kwargs["disable"] is True


# --- revalidate_recipients ------------------------------------------------------------------


@pytest.fixture
def skipped():
    campaign = CampaignFactory(holdout_percent=0)
    BlocklistEntryFactory(organization=campaign.organization, address1="1 Blocked Way", zip="62701")
    rows = {
        "fixed": CampaignRecipientFactory(campaign=campaign, status=S.SKIPPED, skip_reason="International"),
        "no_zip": CampaignRecipientFactory(campaign=campaign, status=S.SKIPPED, skip_reason="International", zip=""),
        "no_address": CampaignRecipientFactory(campaign=campaign, status=S.SKIPPED, skip_reason="NoAddress"),
        "blocked": CampaignRecipientFactory(
            campaign=campaign, status=S.BLACKLISTED, address1="1 Blocked Way", zip="62701"
        ),
        "pending": CampaignRecipientFactory(campaign=campaign),
    }
    return campaign, rows


def test_revalidate_prints_the_admin_s_message_and_names_the_command(skipped):
    campaign, rows = skipped
    lines = run("revalidate_recipients", "--campaign", str(campaign.pk), "--batch-size", "3")
    assert lines == ["Re-validated 4 recipient(s): Blacklisted: 1, ProofingStaged: 2, Skipped: 1."]
    assert {name: status_of(r) for name, r in rows.items()} == {
        "fixed": S.PROOFING_STAGED,
        "no_zip": S.SKIPPED,
        "no_address": S.PROOFING_STAGED,  # it has an address: the old reason no longer holds
        "blocked": S.BLACKLISTED,
        "pending": S.PENDING,
    }
    assert set(RecipientTransition.objects.values_list("source", flat=True)) == {"command:revalidate_recipients"}


def test_revalidate_dry_run_writes_nothing(skipped):
    _campaign, rows = skipped
    before = {name: status_of(r) for name, r in rows.items()}
    assert run("revalidate_recipients", "--dry-run", "--batch-size", "2") == [
        "Dry run: nothing was written. A run now would do this:",
        "Re-validated 4 recipient(s): Blacklisted: 1, ProofingStaged: 2, Skipped: 1.",
    ]
    assert {name: status_of(r) for name, r in rows.items()} == before
    assert not RecipientTransition.objects.exists()


def test_revalidate_selection_and_what_is_not_eligible(skipped):
    _campaign, rows = skipped
    assert run("revalidate_recipients", "--skip-reason", "International") == [
        "Re-validated 2 recipient(s): ProofingStaged: 1, Skipped: 1."
    ]
    assert status_of(rows["no_address"]) == S.SKIPPED
    assert status_of(rows["blocked"]) == S.BLACKLISTED
    assert not rows["blocked"].transitions.exists()
    lines = run("revalidate_recipients", "--status", "Pending", "--status", "Blacklisted")
    assert lines == ["Re-validated 1 recipient(s): Blacklisted: 1. 1 left as they were (not eligible)."]
    assert status_of(rows["pending"]) == S.PENDING
    with pytest.raises(CommandError, match="--skip-reason 'international' is not one of the valid values"):
        run("revalidate_recipients", "--skip-reason", "international")


def test_revalidate_batches(skipped, monkeypatch):
    from campaigns.management.commands import revalidate_recipients

    sizes = []
    real = revalidate_recipients.recipients_revalidate

    def spy(*, queryset, actor):
        sizes.append(queryset.count())
        assert actor.source == "command:revalidate_recipients"
        return real(queryset=queryset, actor=actor)

    monkeypatch.setattr(revalidate_recipients, "recipients_revalidate", spy)
    run("revalidate_recipients", "--batch-size", "3")
    assert sizes == [3, 1]
