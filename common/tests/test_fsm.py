"""``common.fsm`` on its own terms: which rows a bulk move touches, its
compare-and-swap guard and the rollback behind it (SQLite), its one-statement
lock-and-move (PostgreSQL), chunking, and what the history rows say (who,
why, payload, when)."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_fsm import ConcurrentTransition

from campaigns.models import Campaign, CampaignRecipient, RecipientTransition
from campaigns.services import recipient_transition, recipients_bulk_transition
from campaigns.tests.factories import CampaignFactory, CampaignRecipientFactory
from common.fsm import (
    Actor,
    FieldEdit,
    TransitionArgumentError,
    _bulk_sets,
    _move_checked,
    _move_locked,
    bulk_transition,
    edges,
    insert_history,
    run_transition,
    sources_of,
    target_of,
    transition_sets,
    transition_table,
)

pytestmark = pytest.mark.django_db
S = CampaignRecipient.Status
T0 = dt.datetime(2026, 11, 1, 12, tzinfo=dt.UTC)


def many(campaign: Campaign, n: int, status: str) -> list[int]:
    CampaignRecipient.objects.bulk_create(
        CampaignRecipient(campaign=campaign, natural_key=f"{status}-{i}", status=status) for i in range(n)
    )
    return list(campaign.recipients.filter(status=status).order_by("pk").values_list("pk", flat=True))


# --- which rows move --------------------------------------------------------------------


def test_a_bulk_move_touches_only_the_queryset_not_every_row_in_that_state():
    chosen, other = CampaignRecipientFactory.create_batch(2, status=S.ERROR)
    moved = recipients_bulk_transition(
        queryset=CampaignRecipient.objects.filter(pk=chosen.pk), method="retry_proofing", actor=Actor("a")
    )
    assert moved == [chosen.pk]
    other.refresh_from_db()
    assert other.status == S.ERROR
    assert list(RecipientTransition.objects.values_list("recipient_id", flat=True)) == [chosen.pk]


def test_a_bulk_move_of_more_than_one_chunk_moves_and_logs_every_row_once():
    # 501 rows: one full chunk of 500 and one of 1, for both the UPDATE and the history INSERT.
    ids = many(CampaignFactory(), 501, S.ERROR)
    moved = recipients_bulk_transition(
        queryset=CampaignRecipient.objects.all(), method="retry_proofing", actor=Actor("a")
    )
    assert moved == ids
    assert CampaignRecipient.objects.filter(status=S.PROOFING_STAGED).count() == 501
    logged = list(RecipientTransition.objects.order_by("recipient_id").values_list("recipient_id", flat=True))
    assert logged == ids


def test_the_moved_ids_come_back_in_id_order_per_source():
    campaign = CampaignFactory()
    pending = many(campaign, 3, S.PENDING)
    skipped = many(campaign, 3, S.SKIPPED)
    moved = recipients_bulk_transition(queryset=campaign.recipients.order_by("-pk"), method="archive", actor=Actor("a"))
    assert moved == pending + skipped


def test_a_bulk_move_with_nothing_eligible_writes_nothing():
    r = CampaignRecipientFactory(status=S.SENT)
    assert (
        recipients_bulk_transition(queryset=CampaignRecipient.objects.all(), method="archive", actor=Actor("a")) == []
    )
    r.refresh_from_db()
    assert (r.status, RecipientTransition.objects.count()) == (S.SENT, 0)


# --- the compare-and-swap guard -------------------------------------------------------


class MoveBeforeUpdate:
    """Moves ``victim`` to Holdout right before the ``nth`` recipient UPDATE
    runs, as a writer that slipped in between the read and the write would."""

    def __init__(self, victim: int, nth: int = 1) -> None:
        self.victim, self.nth, self.seen = victim, nth, 0

    def __call__(self, execute: Any, sql: str, params: Any, many_: bool, context: dict[str, Any]) -> Any:
        if sql.startswith('UPDATE "campaigns_campaignrecipient" SET "status"'):
            self.seen += 1
            if self.seen == self.nth:
                context["cursor"].execute(
                    'UPDATE "campaigns_campaignrecipient" SET "status" = %s WHERE "id" = %s', ["Holdout", self.victim]
                )
        return execute(sql, params, many_, context)


# SQLite reads the ids, then updates them: the guard below is what stands
# between the two.  PostgreSQL locks and moves in one statement, so no writer
# fits in between and there is no gap to test there (see the next section).
sqlite_only_gap = pytest.mark.skipif(
    connection.vendor == "postgresql",
    reason="PostgreSQL locks and moves in one statement: no gap between lock and update",
)


@sqlite_only_gap
def test_a_row_moved_under_the_update_is_not_overwritten_and_the_batch_rolls_back():
    rows = CampaignRecipientFactory.create_batch(3, status=S.ERROR)
    with (
        connection.execute_wrapper(MoveBeforeUpdate(rows[1].pk)),
        pytest.raises(ConcurrentTransition, match="2 of 3 CampaignRecipient rows moved under us"),
    ):
        recipients_bulk_transition(queryset=CampaignRecipient.objects.all(), method="retry_proofing", actor=Actor("a"))
    # Nothing moved, nothing logged: not even the rows the UPDATE did take.
    assert set(CampaignRecipient.objects.values_list("status", flat=True)) == {S.ERROR}
    assert RecipientTransition.objects.count() == 0


@sqlite_only_gap
def test_a_conflict_in_a_later_source_rolls_back_the_earlier_sources_too():
    campaign = CampaignFactory()
    pending = many(campaign, 2, S.PENDING)
    skipped = many(campaign, 2, S.SKIPPED)
    # archive's sources run in the FSM's order: Pending first, then Skipped.
    with connection.execute_wrapper(MoveBeforeUpdate(skipped[0], nth=2)), pytest.raises(ConcurrentTransition):
        recipients_bulk_transition(queryset=campaign.recipients.all(), method="archive", actor=Actor("a"))
    assert list(campaign.recipients.filter(pk__in=pending).values_list("status", flat=True)) == [S.PENDING] * 2
    assert RecipientTransition.objects.count() == 0


def test_the_read_then_update_move_refuses_a_row_moved_in_between_on_any_database():
    # The path itself, called directly, so its guard is checked on PostgreSQL
    # too (where bulk_transition never takes it).
    rows = CampaignRecipientFactory.create_batch(3, status=S.ERROR)
    queryset = CampaignRecipient.objects.filter(status=S.ERROR)
    with (
        connection.execute_wrapper(MoveBeforeUpdate(rows[1].pk)),
        pytest.raises(ConcurrentTransition, match="2 of 3 CampaignRecipient rows moved under us"),
    ):
        _move_checked(queryset, S.ERROR, {"status": S.PROOFING_STAGED, "updated": T0})


def test_the_read_then_update_move_takes_more_than_one_chunk_on_any_database():
    ids = many(CampaignFactory(), 501, S.ERROR)
    moved = _move_checked(CampaignRecipient.objects.order_by("-pk"), S.ERROR, {"status": S.PROOFING_STAGED})
    assert moved == ids
    assert CampaignRecipient.objects.filter(status=S.PROOFING_STAGED).count() == 501


# --- the one-statement lock-and-move (PostgreSQL) ----------------------------------------

postgresql_only = pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL only")


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_one_statement_skips_a_row_another_transaction_holds_and_logs_exactly_the_rows_moved():
    first, held, last = CampaignRecipientFactory.create_batch(3, status=S.ERROR, json={"approval_errors": ["x"]})
    other = connection.get_new_connection(connection.get_connection_params())
    try:
        with other.cursor() as cursor:  # a second session, holding one row
            cursor.execute('SELECT 1 FROM "campaigns_campaignrecipient" WHERE "id" = %s FOR UPDATE', [held.pk])
            with CaptureQueriesContext(connection) as queries:
                moved = recipients_bulk_transition(
                    queryset=CampaignRecipient.objects.all(), method="retry_proofing", actor=Actor("a")
                )
    finally:
        other.close()
    assert moved == [first.pk, last.pk]
    assert dict(CampaignRecipient.objects.values_list("pk", "status")) == {
        first.pk: S.PROOFING_STAGED,
        held.pk: S.ERROR,
        last.pk: S.PROOFING_STAGED,
    }
    # The sets' JSON edit ran inside the one statement, on the moved rows only.
    assert dict(CampaignRecipient.objects.values_list("pk", "json")) == {
        first.pk: {},
        held.pk: {"approval_errors": ["x"]},
        last.pk: {},
    }
    assert list(RecipientTransition.objects.order_by("recipient_id").values_list("recipient_id", flat=True)) == moved
    # No locking SELECT before it: the lock is taken by the UPDATE itself.
    recipient_sql = [q["sql"] for q in queries.captured_queries if '"campaigns_campaignrecipient"' in q["sql"]]
    assert len(recipient_sql) == 1
    assert recipient_sql[0].startswith('UPDATE "campaigns_campaignrecipient" SET')
    assert "FOR UPDATE SKIP LOCKED" in recipient_sql[0]


@postgresql_only
def test_one_statement_moves_nothing_from_an_empty_selection():
    CampaignRecipientFactory(status=S.ERROR)
    for queryset in (CampaignRecipient.objects.none(), CampaignRecipient.objects.filter(pk__in=[])):
        assert recipients_bulk_transition(queryset=queryset, method="retry_proofing", actor=Actor("a")) == []
    assert (CampaignRecipient.objects.get().status, RecipientTransition.objects.count()) == (S.ERROR, 0)


def test_the_one_statement_move_returns_exactly_the_rows_it_moved_with_the_sets_applied():
    # The statement is portable (SQLite renders no FOR UPDATE and has
    # RETURNING too), so what PostgreSQL runs is checked on both databases.
    chosen = CampaignRecipientFactory.create_batch(
        2, status=S.ERROR, error_message="boom", json={"approval_errors": ["x"], "keep": 1}
    )
    other = CampaignRecipientFactory(status=S.ERROR, error_message="boom")
    done = CampaignRecipientFactory(status=S.SENT)
    rows = CampaignRecipient.objects.filter(pk__in=[r.pk for r in [*chosen, done]], status=S.ERROR)
    fields = {"status": S.PROOFING_STAGED, "updated": T0, **_bulk_sets(CampaignRecipient, "retry_proofing", {})}
    with transaction.atomic():
        moved = _move_locked(rows, fields)
        assert _move_locked(CampaignRecipient.objects.filter(pk__in=[]), fields) == []
    assert moved == sorted(r.pk for r in chosen)
    after = {r.pk: (r.status, r.error_message, r.json, r.updated) for r in CampaignRecipient.objects.all()}
    assert [after[pk] for pk in moved] == [(S.PROOFING_STAGED, "", {"keep": 1}, T0)] * 2
    assert after[other.pk][:2] == (S.ERROR, "boom")
    assert after[done.pk][0] == S.SENT


# --- what a move rewrites ---------------------------------------------------------------


def _indexes_led_by(model: Any, column: str) -> dict[str, list[str]]:
    with connection.cursor() as cursor:
        found = connection.introspection.get_constraints(cursor, model._meta.db_table)
    return {name: c["columns"] for name, c in found.items() if c["index"] and c["columns"][:1] == [column]}


@pytest.mark.parametrize(
    ("model", "column"),
    [(CampaignRecipient, "status"), (CampaignRecipient, "campaign_id"), (RecipientTransition, "recipient_id")],
)
def test_a_column_a_move_writes_has_no_index_another_index_already_covers(model, column):
    # Every move rewrites every index of the rows it touches: a one-column
    # index (or PostgreSQL's LIKE twin) beside a composite led by the same
    # column would only cost writes.
    led = _indexes_led_by(model, column)
    assert led, f"{column} must stay indexed"
    assert [name for name, columns in led.items() if len(columns) == 1] == []


# --- what the history says --------------------------------------------------------------


def test_bulk_history_rows_carry_actor_reason_payload_and_the_time_of_the_move(admin_user):
    rows = CampaignRecipientFactory.create_batch(2, status=S.ERROR)
    before = timezone.now()
    recipients_bulk_transition(
        queryset=CampaignRecipient.objects.all(),
        method="retry_proofing",
        actor=Actor("admin", admin_user),
        reason="ops retry",
        payload={"ticket": 42},
    )
    after = timezone.now()
    logs = list(RecipientTransition.objects.order_by("recipient_id"))
    assert [
        (t.recipient_id, t.from_status, t.to_status, t.source, t.acting_user_id, t.reason, t.payload) for t in logs
    ] == [(r.pk, "Error", "ProofingStaged", "admin", admin_user.pk, "ops retry", {"ticket": 42}) for r in rows]
    updated = {r.updated for r in CampaignRecipient.objects.all()}
    # One instant for the whole move: the rows' ``updated`` and the log's ``created``.
    assert {t.created for t in logs} == updated
    assert before <= updated.pop() <= after


def test_a_per_object_move_logs_its_payload_and_time(admin_user):
    r = CampaignRecipientFactory()
    before = timezone.now()
    recipient_transition(
        recipient=r, method="hold_out", actor=Actor("admin", admin_user), reason="why", payload={"k": [1]}
    )
    log = RecipientTransition.objects.get()
    assert (log.from_status, log.to_status, log.acting_user_id, log.reason, log.payload) == (
        "Pending",
        "Holdout",
        admin_user.pk,
        "why",
        {"k": [1]},
    )
    assert before <= log.created <= timezone.now()


def test_insert_history_keeps_the_given_time_and_cuts_the_reason_to_the_column():
    r = CampaignRecipientFactory()
    insert_history(
        RecipientTransition,
        obj_field="recipient",
        ids=[r.pk],
        from_status="",
        to_status="Pending",
        actor=Actor("task"),
        reason="x" * 600,
        at=T0,
    )
    log = RecipientTransition.objects.get()
    assert (log.created, len(log.reason), log.payload, log.acting_user_id) == (T0, 500, {}, None)


def test_insert_history_with_no_ids_writes_nothing():
    insert_history(
        RecipientTransition, obj_field="recipient", ids=[], from_status="", to_status="Pending", actor=Actor("t")
    )
    assert RecipientTransition.objects.count() == 0


def test_run_transition_saves_only_the_fields_asked_for():
    r = CampaignRecipientFactory(first_name="Ann")
    r.first_name = "Changed"
    run_transition(
        r,
        "hold_out",
        history=RecipientTransition,
        obj_field="recipient",
        actor=Actor("t"),
        update_fields=["status", "updated"],
    )
    r.refresh_from_db()
    assert (r.status, r.first_name) == (S.HOLDOUT, "Ann")
    assert RecipientTransition.objects.get().reason == ""


def test_a_direct_bulk_move_logs_an_empty_reason_and_payload_by_default():
    r = CampaignRecipientFactory(status=S.ERROR)
    moved = bulk_transition(
        CampaignRecipient.objects.all(),
        "retry_proofing",
        history=RecipientTransition,
        obj_field="recipient",
        actor=Actor("t"),
    )
    assert moved == [r.pk]
    assert list(RecipientTransition.objects.values_list("reason", "payload")) == [("", {})]


def test_insert_history_logs_an_empty_reason_by_default():
    r = CampaignRecipientFactory()
    insert_history(
        RecipientTransition, obj_field="recipient", ids=[r.pk], from_status="", to_status="Pending", actor=Actor("t")
    )
    assert RecipientTransition.objects.get().reason == ""


def test_an_actor_keeps_only_an_authenticated_user(admin_user):
    assert Actor("admin", AnonymousUser()).user is None
    assert Actor("admin", admin_user).user == admin_user
    assert repr(Actor("task")) == "Actor('task', user=None)"


# --- declarations -----------------------------------------------------------------------


def fake_model(field: str = "status", **transitions: list[tuple[str, str, dict[str, Any]]]) -> Any:
    """A stand-in with django-fsm-2's two lookups: the transitions of the
    ``field`` and the per-method ``_django_fsm`` metadata."""

    def build(name: str, pairs: list[tuple[str, str, dict[str, Any]]]) -> list[SimpleNamespace]:
        return [SimpleNamespace(name=name, source=s, target=t, custom=c) for s, t, c in pairs]

    class Fake:
        pass

    def all_transitions(self: Any) -> list[SimpleNamespace]:
        return [t for name, pairs in transitions.items() for t in build(name, pairs)]

    setattr(Fake, f"get_all_{field}_transitions", all_transitions)

    for name, pairs in transitions.items():
        meta = SimpleNamespace(transitions={t.source: t for t in build(name, pairs)})
        setattr(Fake, name, SimpleNamespace(_django_fsm=meta))
    return Fake


def test_target_of_refuses_a_method_with_two_targets():
    model = fake_model(fork=[("A", "B", {}), ("C", "D", {})], go=[("A", "B", {}), ("C", "B", {})])
    assert transition_table(model) == {"fork": {"A": "B", "C": "D"}, "go": {"A": "B", "C": "B"}}
    assert target_of(model, "go") == "B"
    with pytest.raises(ValueError, match=r"Fake.fork has no single target"):
        target_of(model, "fork")


def test_a_machine_on_another_field_is_read_from_that_field():
    model = fake_model("phase", go=[("B", "C", {}), ("A", "C", {})])
    assert transition_table(model, "phase") == {"go": {"B": "C", "A": "C"}}
    assert edges(model, "phase") == {("A", "C"), ("B", "C")}
    assert sources_of(model, "go", "phase") == ["A", "B"]
    assert target_of(model, "go", "phase") == "C"


def test_one_method_declares_one_set_of_values():
    shared = {"x": 1}
    model = fake_model(same=[("A", "B", {"sets": shared}), ("C", "B", {"sets": shared})])
    assert transition_sets(model, "same") == {"x": 1}
    model = fake_model(split=[("A", "B", {"sets": {"x": 1}}), ("C", "B", {"sets": {"x": 2}})])
    with pytest.raises(ValueError, match="declares different sets per source"):
        transition_sets(model, "split")


def test_a_method_without_sets_sets_nothing_and_takes_no_arguments():
    model = fake_model(plain=[("A", "B", {})])
    assert transition_sets(model, "plain") == {}
    with pytest.raises(TransitionArgumentError, match=r"Fake.plain sets no values from arguments.*\['x'\]"):
        transition_sets(model, "plain", x=1)


def test_declared_sets_are_a_copy_the_caller_may_change():
    sets = {"x": 1}
    model = fake_model(m=[("A", "B", {"sets": sets})])
    transition_sets(model, "m")["x"] = 2
    assert sets == {"x": 1}


def test_a_bulk_move_refuses_kwargs_before_touching_anything():
    model = fake_model(m=[("A", "B", {"sets": lambda *, a: {"a": a}})])
    qs = SimpleNamespace(model=model)
    with pytest.raises(TransitionArgumentError, match=r"Fake.m applies \['b'\] one object at a time only"):
        bulk_transition(qs, "m", history=RecipientTransition, obj_field="recipient", actor=Actor("t"), a=1, b=2)


def test_a_field_edit_must_say_how_it_edits():
    with pytest.raises(NotImplementedError):
        FieldEdit().apply({})
    with pytest.raises(NotImplementedError):
        FieldEdit().expression("json")
