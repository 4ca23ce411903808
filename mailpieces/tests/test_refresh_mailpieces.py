"""``refresh_mailpieces``: asking the printers about pieces they went quiet on.

Against the in-process simulator (a real HTTP server speaking each vendor's
wire format), so the printer clients and their lookups are the production
ones.  What the printer says goes through the webhooks' monotonic path.
"""

from __future__ import annotations

import datetime as dt
from io import StringIO
from typing import cast

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from campaigns.models import CampaignRecipient
from campaigns.tests.factories import CampaignRecipientFactory
from mailpieces.models import Mailpiece, MailpieceEvent, MailpieceTransition
from mailpieces.status import MailpieceStatus as S
from mailpieces.tests.factories import MailpieceFactory
from mailpieces.webhooks import refresh
from mailpieces.webhooks.refresh import mailpieces_refresh, stale_mailpieces
from printers import conftest as printer_fixtures
from printers.registry import get_printer
from printers.simulator import Fault, Simulator
from printers.testing import UK_ADDRESS, make_request

pytestmark = pytest.mark.django_db

# The live simulator of printers/conftest.py: every printer's base URL points at it.
simulator = printer_fixtures.simulator
Status = CampaignRecipient.Status
Outcome = MailpieceEvent.Outcome
DAY = dt.timedelta(days=1)
_refs = iter(range(10_000, 99_999))


# ---------------------------------------------------------------- helpers
def piece_at_printer(
    sim: Simulator, kind: str = "sandbox", *, status: str | None = None, age_days: int = 10, **request
) -> Mailpiece:
    """A piece the printer made (through its client) and we recorded as Sent
    ``age_days`` ago; ``status`` is what the printer holds now (its vocabulary)."""
    recipient = CampaignRecipientFactory(status=Status.SENT)
    reference = f"pc:7:{recipient.pk:08d}:{next(_refs)}"
    submission = get_printer(kind).submit(make_request(reference, **request))
    if status is not None:
        sim.update(kind, submission.printer_id, status=status)
    piece = MailpieceFactory(recipient=recipient, printer=kind, printer_id=submission.printer_id, reference=reference)
    Mailpiece.objects.filter(pk=piece.pk).update(created=timezone.now() - age_days * DAY)
    return cast("Mailpiece", Mailpiece.objects.get(pk=piece.pk))


def set_status(piece: Mailpiece, status: str) -> Mailpiece:
    Mailpiece.objects.filter(pk=piece.pk).update(status=status)
    return Mailpiece.objects.get(pk=piece.pk)


def disable_sandbox(settings) -> None:
    """Replaced, never changed in place, so the next test sees the simulator's settings."""
    settings.PRINTERS_CONF = {
        **settings.PRINTERS_CONF,
        "sandbox": {**settings.PRINTERS_CONF["sandbox"], "enabled": False},
    }


def lookups(sim: Simulator, kind: str = "sandbox") -> int:
    return len(sim.captured(kind, "GET"))


def only(report) -> refresh.PrinterRefresh:
    assert len(report.printers) == 1
    return report.printers[0]


# ---------------------------------------------------------------- the sandbox, end to end
def test_a_stale_piece_the_printer_says_is_delivered_is_delivered_and_its_recipient_received(simulator):
    piece = piece_at_printer(simulator, status="Delivered")

    report = mailpieces_refresh(stale_days=7)

    result = only(report)
    assert (result.asked, result.moved, result.unchanged, result.not_found, result.failed) == (1, 1, 0, 0, 0)
    assert result.received == 1
    piece.refresh_from_db()
    assert piece.status == S.DELIVERED
    assert piece.last_vendor_status == "Delivered"
    assert piece.recipient.status == Status.RECEIVED
    (event,) = MailpieceEvent.objects.filter(mailpiece=piece)
    assert event.inbox is None
    assert event.outcome == Outcome.APPLIED
    assert event.event_key == f"lookup:{piece.printer_id}:Delivered"
    (move,) = MailpieceTransition.objects.filter(mailpiece=piece)
    assert (move.from_status, move.to_status, move.source) == (S.SUBMITTED, S.DELIVERED, "command:refresh_mailpieces")
    assert str(result) == (
        "Asked Sandbox (local simulator) about 1 piece: 1 moved forward, 0 unchanged, 0 not found, 0 failed "
        "(1 recipients now Received)"
    )


def test_refreshing_twice_records_what_the_printer_said_once(simulator):
    piece = piece_at_printer(simulator, status="InTransit")
    first = timezone.now()
    assert only(mailpieces_refresh(stale_days=7, now=first)).moved == 1
    # A week later the piece is stale again and the printer says the same thing.
    again = only(mailpieces_refresh(stale_days=7, now=first + 8 * DAY))
    assert (again.asked, again.moved, again.unchanged) == (1, 0, 1)
    assert lookups(simulator) == 2
    assert MailpieceEvent.objects.filter(mailpiece=piece).count() == 1
    assert MailpieceTransition.objects.filter(mailpiece=piece).count() == 1
    piece.refresh_from_db()
    assert piece.status == S.IN_TRANSIT


def test_a_piece_refreshed_just_now_is_not_stale_for_the_next_run(simulator):
    piece_at_printer(simulator, status="InTransit")
    mailpieces_refresh(stale_days=7)
    assert mailpieces_refresh(stale_days=7).printers == []
    assert lookups(simulator) == 1


def test_a_piece_whose_printer_said_nothing_new_is_asked_again_only_once_quiet_for_the_stale_days(simulator):
    """A lookup that hears what we knew records nothing, so without its own
    time the piece would be asked on every run until it is 90 days old."""
    piece = piece_at_printer(simulator, status="Delivered")
    t0 = timezone.now()
    assert only(mailpieces_refresh(stale_days=7, now=t0)).moved == 1
    week = only(mailpieces_refresh(stale_days=7, now=t0 + 8 * DAY))  # quiet again: asked, the same answer
    assert (week.asked, week.unchanged) == (1, 1)
    assert Mailpiece.objects.get(pk=piece.pk).checked_at == t0 + 8 * DAY
    asked = lookups(simulator)
    assert mailpieces_refresh(stale_days=7, now=t0 + 9 * DAY).printers == []
    assert lookups(simulator) == asked
    assert only(mailpieces_refresh(stale_days=7, now=t0 + 16 * DAY)).asked == 1


def test_a_piece_whose_report_could_not_be_applied_is_asked_again_next_run(simulator, monkeypatch):
    piece = piece_at_printer(simulator, status="Delivered")

    def broken(reports, **kwargs):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(refresh, "apply_reports", broken)
    assert only(mailpieces_refresh(stale_days=7)).failed == 1
    assert Mailpiece.objects.get(pk=piece.pk).checked_at is None
    monkeypatch.undo()
    again = only(mailpieces_refresh(stale_days=7))
    assert (again.asked, again.moved) == (1, 1)


def test_the_printer_moving_on_later_is_applied_through_the_same_path(simulator):
    piece = piece_at_printer(simulator, status="InTransit")
    first = timezone.now()
    mailpieces_refresh(stale_days=7, now=first)
    simulator.update("sandbox", piece.printer_id, status="Delivered")
    assert only(mailpieces_refresh(stale_days=7, now=first + 8 * DAY)).moved == 1
    piece.refresh_from_db()
    assert piece.status == S.DELIVERED
    assert list(piece.transitions.order_by("id").values_list("from_status", "to_status")) == [
        (S.SUBMITTED, S.IN_TRANSIT),
        (S.IN_TRANSIT, S.DELIVERED),
    ]


# ---------------------------------------------------------------- who is asked
def test_a_piece_with_a_recent_report_is_not_asked(simulator):
    piece = piece_at_printer(simulator, status="Delivered")
    MailpieceEvent.objects.create(
        printer="sandbox",
        printer_id=piece.printer_id,
        event_key="evt_recent",
        mailpiece=piece,
        vendor_status="InTransit",
        status=S.IN_TRANSIT,
        outcome=Outcome.IGNORED,
        created=timezone.now() - 2 * DAY,
    )
    assert stale_mailpieces(stale_days=7).count() == 0
    assert mailpieces_refresh(stale_days=7).printers == []
    assert lookups(simulator) == 0
    assert Mailpiece.objects.get(pk=piece.pk).status == S.SUBMITTED


def test_a_piece_with_a_recent_transition_is_not_asked_and_an_old_report_does_not_protect_it(simulator):
    moved = piece_at_printer(simulator, status="Delivered")
    MailpieceTransition.objects.create(
        mailpiece=moved, from_status=S.SUBMITTED, to_status=S.RECEIVED, source="test", created=timezone.now() - DAY
    )
    quiet = piece_at_printer(simulator, status="Delivered")
    MailpieceEvent.objects.create(
        printer="sandbox",
        printer_id=quiet.printer_id,
        event_key="evt_old",
        mailpiece=quiet,
        vendor_status="Received",
        status=S.RECEIVED,
        outcome=Outcome.APPLIED,
        created=timezone.now() - 9 * DAY,
    )
    assert list(stale_mailpieces(stale_days=7)) == [quiet]


@pytest.mark.parametrize("final", [S.CANCELLED, S.ERROR, S.TEST])
def test_a_piece_in_a_final_state_is_not_asked(simulator, final):
    set_status(piece_at_printer(simulator, status="Delivered"), final)
    assert mailpieces_refresh(stale_days=7).printers == []
    assert lookups(simulator) == 0


def test_a_delivered_piece_is_still_asked_because_it_can_come_back(simulator):
    piece = set_status(piece_at_printer(simulator, status="Returned"), S.DELIVERED)
    assert only(mailpieces_refresh(stale_days=7)).moved == 1
    piece.refresh_from_db()
    assert piece.status == S.RETURNED


def test_young_pieces_old_pieces_and_pieces_without_a_printer_id_are_not_asked(simulator):
    piece_at_printer(simulator, status="Delivered", age_days=3)  # mailed 3 days ago: not quiet for 7 days yet
    piece_at_printer(simulator, status="Delivered", age_days=refresh.MAX_AGE_DAYS + 1)  # settled, or a person's
    no_id = piece_at_printer(simulator, status="Delivered")
    Mailpiece.objects.filter(pk=no_id.pk).update(printer_id="")
    assert mailpieces_refresh(stale_days=7).printers == []
    assert lookups(simulator) == 0


def test_only_the_printer_asked_for_and_at_most_limit_pieces_are_asked(simulator):
    pieces = [piece_at_printer(simulator, status="Delivered") for _ in range(3)]
    assert mailpieces_refresh(stale_days=7, printer="lob").printers[0].asked == 0
    result = only(mailpieces_refresh(stale_days=7, printer="sandbox", limit=2))
    assert (result.asked, result.moved) == (2, 2)
    assert [p.pk for p in stale_mailpieces(stale_days=7)] == [pieces[2].pk]


# ---------------------------------------------------------------- what the printer answers
def test_a_lookup_that_finds_nothing_is_counted_not_found_and_changes_nothing(simulator):
    recipient = CampaignRecipientFactory(status=Status.SENT)
    piece = MailpieceFactory(recipient=recipient, printer="sandbox", printer_id="sbx_gone", reference="pc:7:1:0")
    Mailpiece.objects.filter(pk=piece.pk).update(created=timezone.now() - 10 * DAY)

    result = only(mailpieces_refresh(stale_days=7))

    assert (result.asked, result.not_found, result.moved, result.failed) == (1, 1, 0, 0)
    assert MailpieceEvent.objects.count() == 0
    assert Mailpiece.objects.get(pk=piece.pk).status == S.SUBMITTED


@pytest.mark.parametrize("fault", [503, 429, Fault.latency(1.0)])
def test_a_transient_error_is_counted_failed_changes_nothing_and_the_next_run_asks_again(simulator, fault):
    piece = piece_at_printer(simulator, status="Delivered")
    simulator.inject("sandbox", fault)

    result = only(mailpieces_refresh(stale_days=7))

    assert (result.asked, result.failed, result.moved) == (1, 1, 0)
    assert result.errors
    assert MailpieceEvent.objects.count() == 0
    assert Mailpiece.objects.get(pk=piece.pk).status == S.SUBMITTED
    assert only(mailpieces_refresh(stale_days=7)).moved == 1


def test_one_failed_lookup_does_not_stop_the_others(simulator):
    pieces = [piece_at_printer(simulator, status="Delivered") for _ in range(3)]
    simulator.inject("sandbox", 503)
    result = only(mailpieces_refresh(stale_days=7))
    assert (result.asked, result.failed, result.moved) == (3, 1, 2)
    assert sorted(Mailpiece.objects.get(pk=p.pk).status for p in pieces) == [S.DELIVERED, S.DELIVERED, S.SUBMITTED]


def test_each_lookup_request_takes_one_permit_from_the_printers_limiter(simulator, monkeypatch):
    for _ in range(3):
        piece_at_printer(simulator, status="Delivered")
    before = lookups(simulator)
    permits: list[str] = []

    def printer_permits(kind):
        def take() -> int:
            permits.append(kind)
            return 0

        return take

    monkeypatch.setattr(refresh, "printer_permits", printer_permits)
    assert only(mailpieces_refresh(stale_days=7)).asked == 3
    assert lookups(simulator) - before == 3
    assert permits == ["sandbox"] * 3


def test_a_printer_that_refuses_every_lookup_is_given_up_on_for_this_run(simulator, monkeypatch):
    monkeypatch.setattr(refresh, "CHUNK", 2)  # the refusals are counted across chunks
    for _ in range(refresh.MAX_REFUSALS_IN_A_ROW + 2):
        piece_at_printer(simulator, status="Delivered")
    simulator.inject("sandbox", Fault.status(401, times=100))
    result = only(mailpieces_refresh(stale_days=7))
    assert result.asked == result.failed == refresh.MAX_REFUSALS_IN_A_ROW
    assert "refused" in result.stopped
    assert lookups(simulator) == refresh.MAX_REFUSALS_IN_A_ROW


def test_a_status_behind_the_current_one_is_ignored(simulator):
    piece = set_status(piece_at_printer(simulator, status="Received"), S.IN_TRANSIT)

    result = only(mailpieces_refresh(stale_days=7))

    assert (result.moved, result.unchanged) == (0, 1)
    piece.refresh_from_db()
    assert piece.status == S.IN_TRANSIT
    assert not piece.transitions.exists()
    (event,) = MailpieceEvent.objects.filter(mailpiece=piece)
    assert event.outcome == Outcome.IGNORED
    assert "behind" in event.note


def test_a_piece_the_printer_holds_under_another_id_is_left_alone(simulator):
    piece = piece_at_printer(simulator, status="Delivered")
    Mailpiece.objects.filter(pk=piece.pk).update(printer_id="sbx_not_that_one")
    result = only(mailpieces_refresh(stale_days=7))
    assert (result.mismatched, result.moved) == (1, 0)
    assert MailpieceEvent.objects.count() == 0
    # Left for a person, and still said on the next run: not stamped as answered.
    assert Mailpiece.objects.get(pk=piece.pk).checked_at is None
    assert only(mailpieces_refresh(stale_days=7)).mismatched == 1


def test_a_dry_run_asks_and_counts_like_a_real_run_but_writes_nothing(simulator):
    delivered = piece_at_printer(simulator, status="Delivered")
    behind = set_status(piece_at_printer(simulator, status="Received"), S.IN_TRANSIT)

    dry = only(mailpieces_refresh(stale_days=7, dry_run=True))

    assert (dry.asked, dry.moved, dry.unchanged, dry.received) == (2, 1, 1, 1)
    assert MailpieceEvent.objects.count() == 0
    assert MailpieceTransition.objects.count() == 0
    assert Mailpiece.objects.get(pk=delivered.pk).status == S.SUBMITTED
    assert Mailpiece.objects.get(pk=behind.pk).status == S.IN_TRANSIT
    assert CampaignRecipient.objects.get(pk=delivered.recipient_id).status == Status.SENT
    real = only(mailpieces_refresh(stale_days=7))
    assert (real.asked, real.moved, real.unchanged, real.received) == (2, 1, 1, 1)


def test_a_disabled_printer_is_skipped_with_the_reason(simulator, settings):
    piece_at_printer(simulator, status="Delivered")
    disable_sandbox(settings)
    result = only(mailpieces_refresh(stale_days=7))
    assert result.asked == 0
    assert "disabled" in result.skipped
    assert str(result).startswith("Did not ask Sandbox (local simulator): printer 'sandbox' is disabled")
    assert lookups(simulator) == 0


def test_an_unknown_printer_is_refused():
    with pytest.raises(ValueError, match="unknown printer 'acme'"):
        mailpieces_refresh(stale_days=7, printer="acme")


# ---------------------------------------------------------------- other printers, end to end
def test_lob_scans_move_a_stale_postcard_to_the_furthest_scan(simulator):
    piece = piece_at_printer(simulator, "lob")
    steps = simulator.timeline(
        "lob", piece.printer_id, ["postcard.mailed", "postcard.in_transit", "postcard.delivered"]
    )
    simulator.build_webhooks("http://127.0.0.1:9/unused", steps)  # the scans land on the postcard; nobody is told

    assert only(mailpieces_refresh(stale_days=7)).moved == 1

    piece.refresh_from_db()
    assert piece.status == S.DELIVERED
    assert piece.last_vendor_status == "postcard.delivered"
    scanned = dt.datetime.fromtimestamp(steps[-1].at, tz=dt.UTC)
    assert abs(piece.status_at - scanned) < dt.timedelta(milliseconds=1)  # Lob's times are to the millisecond
    (event,) = MailpieceEvent.objects.filter(mailpiece=piece)
    assert event.event_key == f"lookup:{piece.printer_id}:postcard.delivered:{int(steps[-1].at)}"


def test_stannp_status_moves_a_stale_piece(simulator):
    piece = piece_at_printer(simulator, "stannp", status="local_delivery", to=UK_ADDRESS, size="A6")
    assert only(mailpieces_refresh(stale_days=7, printer="stannp")).moved == 1
    piece.refresh_from_db()
    assert piece.status == S.LOCAL_DELIVERY


# ---------------------------------------------------------------- the command
def run(*args: str) -> str:
    out = StringIO()
    call_command("refresh_mailpieces", *args, "--no-progress", stdout=out)
    return out.getvalue()


def test_the_command_says_what_it_did_in_words(simulator):
    piece_at_printer(simulator, status="Delivered")
    piece_at_printer(simulator, status="Received")
    gone = MailpieceFactory(
        recipient=CampaignRecipientFactory(status=Status.SENT), printer_id="sbx_gone", reference="pc:7:2:0"
    )
    Mailpiece.objects.filter(pk=gone.pk).update(created=timezone.now() - 10 * DAY)

    out = run("--stale-days", "7")

    assert "Asked Sandbox (local simulator) about 3 pieces: 2 moved forward, 0 unchanged, 1 not found" in out
    assert "asked about 3 of 3 pieces" in out


def test_the_command_dry_run_says_so_and_changes_nothing(simulator):
    piece = piece_at_printer(simulator, status="Delivered")
    out = run("--dry-run")
    assert "Dry run: the printers were asked, nothing was changed." in out
    assert "1 moved forward" in out
    assert Mailpiece.objects.get(pk=piece.pk).status == S.SUBMITTED


def test_the_command_with_nothing_stale_says_so(simulator):
    assert "No stale mailpieces: nothing to ask." in run()
    assert "No stale mailpieces at Lob: nothing to ask." in run("--printer", "lob")


def test_the_command_refuses_an_unknown_printer_naming_the_valid_ones():
    with pytest.raises(CommandError, match="Unknown printer 'acme': use one of sandbox, lob, stannp"):
        run("--printer", "acme")


def test_the_command_refuses_bad_numbers():
    with pytest.raises(CommandError, match="--stale-days must be 0 or more"):
        run("--stale-days", "-1")
    with pytest.raises(CommandError, match="--limit must be at least 1"):
        run("--limit", "0")


def test_the_command_explains_a_disabled_printer_without_a_traceback(simulator, settings):
    piece_at_printer(simulator, status="Delivered")
    disable_sandbox(settings)
    with pytest.raises(
        CommandError, match=r"Sandbox \(local simulator\) cannot be asked: printer 'sandbox' is disabled"
    ):
        run("--printer", "sandbox")
    assert "Did not ask Sandbox (local simulator): printer 'sandbox' is disabled" in run()


def test_the_command_reports_failures_and_that_they_are_asked_again(simulator):
    """Failed lookups end the command with exit code 1 (a CommandError), so
    cron or the person running it notices; it printed them and exited 0."""
    piece_at_printer(simulator, status="Delivered")
    simulator.inject("sandbox", 503)
    out = StringIO()
    with pytest.raises(CommandError, match=r"^1 lookups failed: the next run asks about those pieces again\.$"):
        call_command("refresh_mailpieces", "--no-progress", stdout=out)
    assert "1 failed" in out.getvalue()


def test_the_command_on_a_terminal_shows_a_bar_not_log_lines(simulator, monkeypatch):
    piece_at_printer(simulator, status="Delivered")
    monkeypatch.setattr("sys.stdout.isatty", lambda: True)
    out = StringIO()
    call_command("refresh_mailpieces", stdout=out)
    assert "asked about" not in out.getvalue()
    assert "1 moved forward" in out.getvalue()
