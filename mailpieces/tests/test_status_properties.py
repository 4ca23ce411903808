"""Whatever order printers report in, a piece ends where its best news says.

Each example drives a real ``Mailpiece`` through ``mailpiece_apply_status``
(the webhook path: FSM method, concurrency guard, history row) and checks the
database afterwards, inside a transaction rolled back after the example.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from campaigns.tests.factories import CampaignRecipientFactory
from common.fsm import Actor
from mailpieces.models import Mailpiece, MailpieceTransition
from mailpieces.services import mailpiece_apply_status
from mailpieces.status import RANK, TERMINAL, MailpieceStatus

pytestmark = pytest.mark.django_db
STATUSES = [s.value for s in MailpieceStatus]
PROGRESS = [s for s in STATUSES if s in RANK and s != "Submitted"]
T0 = dt.datetime(2026, 11, 1, 12, tzinfo=dt.UTC)
ACTOR = Actor("webhook:sandbox")
# A report: (status, minutes after T0 the printer says it happened).
REPORTS = st.lists(st.tuples(st.sampled_from(STATUSES), st.integers(0, 10_000)), max_size=15)


# The database fixture is set up once per test, not per example: each example
# rolls its own work back instead.
def db_settings(max_examples: int) -> settings:
    return settings(
        max_examples=max_examples, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )


@contextmanager
def rolled_back() -> Iterator[None]:
    with transaction.atomic():
        yield
        transaction.set_rollback(True)


def new_piece(start: str = "Submitted") -> Mailpiece:
    recipient = CampaignRecipientFactory()
    return Mailpiece.objects.create(
        recipient=recipient, printer="sandbox", printer_id=f"sbx_{recipient.pk}", status=start
    )


def report(mp: Mailpiece, status: str, minutes: int = 0) -> bool:
    return mailpiece_apply_status(
        mailpiece=mp,
        status=MailpieceStatus(status),
        actor=ACTOR,
        at=T0 + dt.timedelta(minutes=minutes),
        vendor_status=f"vendor-{status}",
        payload={"reported": status},
    )


def history(mp: Mailpiece) -> list[MailpieceTransition]:
    return list(MailpieceTransition.objects.filter(mailpiece=mp).order_by("id"))


@db_settings(150)
@given(start=st.sampled_from(STATUSES), reports=REPORTS)
def test_any_report_sequence_only_moves_forward_and_logs_every_move(db, start, reports):
    with rolled_back():
        mp = new_piece(start)
        moved = [report(mp, status, minutes) for status, minutes in reports]
        stored = Mailpiece.objects.get(pk=mp.pk)
        log = history(mp)
        assert sum(moved) == len(log)
        path = [start, *(t.to_status for t in log)]
        # Each logged move starts where the previous one ended, and the row is where the log ends.
        assert [t.from_status for t in log] == path[:-1]
        assert stored.status == path[-1] == mp.status
        ranked = [RANK[s] for s in path[1:] if s in RANK]
        assert ranked == sorted(set(ranked)), f"moved backwards: {path}"
        assert all(s not in TERMINAL for s in path[:-1]), f"left a terminal state: {path}"
        assert "Unknown" not in path[1:]
        assert "Submitted" not in path[1:]
        # The log says who, why and what the printer sent.
        for t in log:
            assert (t.source, t.reason, t.payload) == (
                "webhook:sandbox",
                f"printer reported vendor-{t.to_status}",
                {"reported": t.to_status},
            )
        if log:
            applied = [(s, m) for (s, m), ok in zip(reports, moved, strict=True) if ok]
            assert stored.last_vendor_status == f"vendor-{applied[-1][0]}"
            # The recorded time is the newest one seen among the applied reports.
            assert stored.status_at == T0 + dt.timedelta(minutes=max(m for _, m in applied))


@db_settings(100)
@given(reports=st.lists(st.sampled_from(PROGRESS), min_size=1, max_size=12))
def test_progress_reports_in_any_order_end_at_the_highest(db, reports):
    with rolled_back():
        mp = new_piece()
        for status in reports:
            report(mp, status)
        assert Mailpiece.objects.get(pk=mp.pk).status == max(reports, key=RANK.__getitem__)


@db_settings(100)
@given(reports=REPORTS)
def test_duplicates_change_nothing(db, reports):
    with rolled_back():
        once, twice = new_piece(), new_piece()
        for status, minutes in reports:
            assert report(twice, status, minutes) == report(once, status, minutes)
            assert report(twice, status, minutes) is False  # the duplicate
        a, b = Mailpiece.objects.get(pk=once.pk), Mailpiece.objects.get(pk=twice.pk)
        assert (a.status, a.status_at, a.last_vendor_status) == (b.status, b.status_at, b.last_vendor_status)
        assert [(t.from_status, t.to_status) for t in history(once)] == [
            (t.from_status, t.to_status) for t in history(twice)
        ]
