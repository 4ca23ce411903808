"""The webhook inbox's "Re-read selected deliveries" action: who may run it and what it says."""

from __future__ import annotations

from http import HTTPStatus

import pytest
from django.contrib.auth.models import Group, Permission
from django.urls import reverse

from common.fsm import Actor
from common.permissions import OPS, READ_ONLY
from mailpieces.models import InboundWebhook
from mailpieces.tests.test_webhook_processing import sandbox_body, sent_piece, store
from mailpieces.webhooks.processing import webhooks_process
from mailpieces.webhooks.reprocess import webhooks_reprocess_ids

pytestmark = pytest.mark.django_db
State = InboundWebhook.State


def changelist() -> str:
    return reverse("admin:mailpieces_inboundwebhook_changelist")


@pytest.fixture
def inbox():
    """A delivery processed, one quarantined for good, one quarantined that reads
    now (as after a parser fix), and one still pending."""
    sent_piece()
    good = store("sandbox", sandbox_body("evt_d", "sbx_1", "Delivered", 1), event_id="evt_d")
    bad = store("sandbox", b"<html>not json</html>", event_id="sha256:bad")
    fixed = store("sandbox", sandbox_body("evt_t", "sbx_1", "InTransit", 0), event_id="evt_t")
    webhooks_process()
    InboundWebhook.objects.filter(pk=fixed).update(state=State.QUARANTINED, error="old parser", events_count=0)
    pending = store("sandbox", sandbox_body("evt_p", "sbx_1", "Delivered", 2), event_id="evt_p")
    return {"good": good, "bad": bad, "fixed": fixed, "pending": pending}


def staff(django_user_model, *groups: str, perms: tuple[str, ...] = ()):
    user = django_user_model.objects.create_user(
        username=f"u{django_user_model.objects.count()}", password="x", is_staff=True
    )
    user.groups.set(Group.objects.filter(name__in=groups))
    user.user_permissions.set(Permission.objects.filter(codename__in=perms))
    return user


def shown(response) -> str:
    return " | ".join(str(m) for m in response.context["messages"])


def test_rereading_says_what_it_did_and_leaves_pending_rows_alone(admin_client, inbox):
    ids = list(inbox.values())
    response = admin_client.post(changelist(), {"action": "reread", "_selected_action": ids}, follow=True)
    text = shown(response)
    assert text.startswith("Re-read: 3 deliveries re-read")
    assert "1 quarantined deliveries now read" in text
    assert "1 still cannot be read" in text
    assert "1 still waiting for the normal run, left alone" in text
    states = dict(InboundWebhook.objects.values_list("pk", "state"))
    assert states[inbox["fixed"]] == State.PROCESSED
    assert states[inbox["bad"]] == State.QUARANTINED
    assert states[inbox["pending"]] == State.PENDING
    assert InboundWebhook.objects.get(pk=inbox["fixed"]).events_count == 1
    # Twice is harmless: the applied report stands, nothing is applied again.
    response = admin_client.post(changelist(), {"action": "reread", "_selected_action": ids}, follow=True)
    assert "0 reports applied" in shown(response)


def test_the_function_reads_only_the_ids_given():
    piece = sent_piece()
    one = store("sandbox", sandbox_body("evt_1", piece.printer_id, "InTransit", 0), event_id="evt_1")
    other = store("sandbox", sandbox_body("evt_2", piece.printer_id, "Delivered", 1), event_id="evt_2")
    webhooks_process()
    InboundWebhook.objects.filter(pk__in=[one, other]).update(state=State.QUARANTINED, error="x")
    report = webhooks_reprocess_ids(ids=[one], actor=Actor("admin"))
    assert (report.rows, report.unquarantined) == (1, 1)
    assert InboundWebhook.objects.get(pk=other).state == State.QUARANTINED


def test_a_dry_run_changes_nothing(inbox):
    report = webhooks_reprocess_ids(ids=[inbox["fixed"]], actor=Actor("admin"), dry_run=True)
    assert report.unquarantined == 1
    assert InboundWebhook.objects.get(pk=inbox["fixed"]).state == State.QUARANTINED


def test_ops_may_reread(client, django_user_model, inbox):
    client.force_login(staff(django_user_model, OPS))
    page = client.get(changelist())
    assert b'value="reread"' in page.content
    response = client.post(changelist(), {"action": "reread", "_selected_action": [inbox["fixed"]]}, follow=True)
    assert "1 quarantined deliveries now read" in shown(response)


@pytest.mark.parametrize("groups", [(READ_ONLY,), ()])
def test_others_neither_see_nor_run_it(client, django_user_model, inbox, groups):
    user = staff(django_user_model, *groups, perms=("view_inboundwebhook",))
    client.force_login(user)
    page = client.get(changelist())
    assert page.status_code == HTTPStatus.OK
    assert b'value="reread"' not in page.content
    client.post(changelist(), {"action": "reread", "_selected_action": [inbox["fixed"]]})
    assert InboundWebhook.objects.get(pk=inbox["fixed"]).state == State.QUARANTINED


@pytest.mark.parametrize("state", ["quarantined", "pending", "processed"])
def test_the_inbox_filters_by_state(admin_client, inbox, state):
    response = admin_client.get(changelist(), {"state": state})
    assert response.status_code == HTTPStatus.OK
    assert len(response.context["cl"].result_list) == {"quarantined": 2, "pending": 1, "processed": 1}[state]
