from __future__ import annotations

import datetime as dt

import pytest
from django.db import IntegrityError, transaction

from common.fsm import Actor
from mailpieces.models import Mailpiece, MailpieceTransition
from mailpieces.services import mailpiece_apply_status
from mailpieces.status import MailpieceStatus as S
from mailpieces.tests.factories import MailpieceFactory

pytestmark = pytest.mark.django_db
T0 = dt.datetime(2026, 11, 1, 12, tzinfo=dt.UTC)


def apply(mp: Mailpiece, status: S, at: dt.datetime | None = None) -> bool:
    return mailpiece_apply_status(
        mailpiece=mp, status=status, actor=Actor("webhook:sandbox"), at=at, vendor_status=status.lower()
    )


def test_it_moves_forward_and_logs_each_move():
    mp = MailpieceFactory()
    assert apply(mp, S.PRODUCING, T0) is True
    assert apply(mp, S.DELIVERED, T0 + dt.timedelta(days=3)) is True
    mp.refresh_from_db()
    assert (mp.status, mp.status_at, mp.last_vendor_status) == (S.DELIVERED, T0 + dt.timedelta(days=3), "delivered")
    assert list(MailpieceTransition.objects.order_by("id").values_list("from_status", "to_status")) == [
        ("Submitted", "Producing"),
        ("Producing", "Delivered"),
    ]


def test_a_late_lower_status_is_ignored():
    mp = MailpieceFactory()
    apply(mp, S.DELIVERED, T0)
    assert apply(mp, S.IN_TRANSIT, T0 - dt.timedelta(days=1)) is False
    mp.refresh_from_db()
    assert mp.status == S.DELIVERED
    assert MailpieceTransition.objects.count() == 1


def test_a_duplicate_status_is_a_no_op():
    mp = MailpieceFactory()
    apply(mp, S.IN_TRANSIT, T0)
    assert apply(mp, S.IN_TRANSIT, T0) is False
    assert MailpieceTransition.objects.count() == 1


def test_unknown_never_overwrites_a_known_status():
    mp = MailpieceFactory()
    apply(mp, S.PRODUCING, T0)
    assert apply(mp, S.UNKNOWN, T0 + dt.timedelta(hours=1)) is False
    mp.refresh_from_db()
    assert mp.status == S.PRODUCING


def test_status_time_never_goes_backwards():
    mp = MailpieceFactory()
    apply(mp, S.IN_TRANSIT, T0)
    # A higher rank reported with an older timestamp still moves forward, but
    # the recorded time stays the newest one seen.
    assert apply(mp, S.DELIVERED, T0 - dt.timedelta(hours=1)) is True
    mp.refresh_from_db()
    assert mp.status_at == T0


def test_a_cancelled_piece_stays_cancelled():
    mp = MailpieceFactory()
    apply(mp, S.CANCELLED, T0)
    for status in S:
        assert apply(mp, status, T0 + dt.timedelta(days=1)) is False


def test_one_live_mailpiece_per_recipient():
    mp = MailpieceFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        MailpieceFactory(recipient=mp.recipient)


def test_a_dead_mailpiece_allows_a_new_one():
    mp = MailpieceFactory()
    apply(mp, S.CANCELLED, T0)
    again = MailpieceFactory(recipient=mp.recipient)
    assert again.pk != mp.pk


def test_printer_ids_are_unique_per_printer():
    mp = MailpieceFactory(printer_id="psc_1", printer="lob")
    with pytest.raises(IntegrityError), transaction.atomic():
        MailpieceFactory(printer_id="psc_1", printer="lob")
    assert MailpieceFactory(printer_id="psc_1", printer="stannp").pk != mp.pk
