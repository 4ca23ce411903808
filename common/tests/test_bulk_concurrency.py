"""Two workers racing for the same rows: each row moves once and is logged once.

Runs on a real file database with real connections (transactional_db), so on
SQLite it exercises WAL + IMMEDIATE transactions and on PostgreSQL real
concurrent UPDATEs.
"""

from __future__ import annotations

import threading
from functools import partial

import pytest
from django.db import connection, connections, transaction

from campaigns.models import CampaignRecipient, RecipientTransition
from campaigns.services import recipients_bulk_transition
from campaigns.tests.factories import CampaignFactory, CampaignRecipientFactory
from common.fsm import Actor
from common.testing import race

S = CampaignRecipient.Status


@pytest.mark.django_db(transaction=True)
def test_concurrent_bulk_moves_move_each_row_once() -> None:
    campaign = CampaignFactory()
    CampaignRecipientFactory.create_batch(300, campaign=campaign, status=S.ERROR)

    def worker(name: str) -> list[int]:
        return recipients_bulk_transition(
            queryset=CampaignRecipient.objects.filter(campaign=campaign), method="retry_proofing", actor=Actor(name)
        )

    results = race([partial(worker, f"worker-{i}") for i in range(3)], timeout=60)

    moved = [pk for batch in results for pk in batch]
    assert len(moved) == 300
    assert len(set(moved)) == 300
    assert CampaignRecipient.objects.filter(status=S.PROOFING_STAGED).count() == 300
    assert RecipientTransition.objects.count() == 300


@pytest.mark.django_db(transaction=True)
def test_a_bulk_move_skips_a_row_another_worker_holds_instead_of_waiting() -> None:
    if not connection.features.has_select_for_update_skip_locked:
        pytest.skip("SQLite: one IMMEDIATE transaction writes at a time, there is no row lock to skip")
    held, free = CampaignRecipientFactory.create_batch(2, status=S.ERROR)
    locked, release = threading.Event(), threading.Event()

    def holder() -> None:
        try:
            with transaction.atomic():
                list(CampaignRecipient.objects.select_for_update().filter(pk=held.pk))
                locked.set()
                release.wait(10)
        finally:
            connections.close_all()

    thread = threading.Thread(target=holder)
    thread.start()
    assert locked.wait(10)
    try:
        with connection.cursor() as cursor:
            # A mover that waited for the lock would fail here instead of hanging the suite.
            cursor.execute("SET statement_timeout = 3000")
        moved = recipients_bulk_transition(
            queryset=CampaignRecipient.objects.all(), method="retry_proofing", actor=Actor("worker")
        )
    finally:
        release.set()
        thread.join(10)
        with connection.cursor() as cursor:
            cursor.execute("SET statement_timeout = 0")
    assert moved == [free.pk]
    assert CampaignRecipient.objects.get(pk=held.pk).status == S.ERROR
