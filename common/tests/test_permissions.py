"""The Ops and Read-only groups (made by the migration, kept by
``setup_groups``) and the helpers the admin asks (common/permissions.py)."""

from __future__ import annotations

import importlib
from io import StringIO

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command
from django.test import RequestFactory
from django.utils import timezone

from campaigns.models import CampaignRecipient
from campaigns.tests.factories import CampaignRecipientFactory
from common import permissions
from common.permissions import (
    OPS,
    READ_ONLY,
    VIEW_APPS,
    can_cancel,
    can_edit_address,
    can_import,
    can_retry,
    can_revalidate,
    groups_setup,
)
from mailpieces.models import Mailpiece
from mailpieces.tests.factories import MailpieceFactory

pytestmark = pytest.mark.django_db
S = CampaignRecipient.Status
ACTIONS = {"campaigns.retry_recipient", "campaigns.revalidate_recipient", "campaigns.cancel_recipient"}
# Ops' recipient permissions besides the actions: edit (the address until mailed)
# and add (by hand or by importing a file).
OPS_RECIPIENT = {"campaigns.change_campaignrecipient", "campaigns.add_campaignrecipient"}


def codes(group_name: str) -> set[str]:
    group = Group.objects.get(name=group_name)
    return {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.select_related("content_type")}


def every_view_permission() -> set[str]:
    return {
        f"{label}.view_{model._meta.model_name}"
        for label in VIEW_APPS
        for model in apps.get_app_config(label).get_models()
    }


@pytest.fixture
def user_in(django_user_model):
    def make(*groups: str, **extra):
        user = django_user_model.objects.create_user(
            username=f"u{django_user_model.objects.count()}", password="x", is_staff=True, **extra
        )
        user.groups.set(Group.objects.filter(name__in=groups))
        return django_user_model.objects.get(pk=user.pk)  # fresh: no permission cache

    return make


# --- the groups ----------------------------------------------------------------------


def test_the_migration_made_both_groups_with_exactly_their_permissions():
    views = every_view_permission()
    assert "campaigns.view_campaignrecipient" in views
    assert "mailpieces.view_mailpiece" in views
    assert "django_q.view_task" in views
    assert codes(READ_ONLY) == views
    assert codes(OPS) == views | ACTIONS | OPS_RECIPIENT


def test_neither_group_may_delete_anything_and_ops_adds_only_recipients():
    for name in (OPS, READ_ONLY):
        assert not {c for c in codes(name) if c.split(".")[1].startswith("delete_")}
    assert not {c for c in codes(READ_ONLY) if c.split(".")[1].startswith("add_")}
    assert {c for c in codes(OPS) if c.split(".")[1].startswith("add_")} == {"campaigns.add_campaignrecipient"}
    # Read-only changes nothing at all; Ops changes recipients only.
    assert not {c for c in codes(READ_ONLY) if not c.split(".")[1].startswith("view_")}
    assert {c for c in codes(OPS) if c.split(".")[1].startswith("change_")} == {"campaigns.change_campaignrecipient"}


def test_the_action_permissions_are_recipient_permissions_with_names():
    perms = Permission.objects.filter(codename__in=[c.split(".")[1] for c in ACTIONS]).select_related("content_type")
    assert {(p.content_type.app_label, p.content_type.model) for p in perms} == {("campaigns", "campaignrecipient")}
    assert {p.codename: p.name for p in perms} == permissions.ACTION_PERMISSIONS


def test_setup_groups_twice_changes_nothing_the_second_time():
    out = StringIO()
    call_command("setup_groups", stdout=out)
    call_command("setup_groups", stdout=out)
    n_ops, n_read = len(codes(OPS)), len(codes(READ_ONLY))
    assert out.getvalue().splitlines()[-2:] == [
        f"Read-only: {n_read} permission(s), unchanged (+0, -0)",
        f"Ops: {n_ops} permission(s), unchanged (+0, -0)",
    ]
    assert Group.objects.filter(name__in=[OPS, READ_ONLY]).count() == 2
    assert Permission.objects.filter(codename="retry_recipient").count() == 1


def test_setup_groups_restores_the_policy_and_grants_views_of_new_models():
    ops = Group.objects.get(name=OPS)
    ops.permissions.add(Permission.objects.get(codename="delete_campaignrecipient"))  # given by hand
    # As if the mailpiece model were added after the migration ran.
    ops.permissions.remove(Permission.objects.get(codename="view_mailpiece"))
    Group.objects.filter(name=READ_ONLY).delete()
    out = StringIO()
    call_command("setup_groups", "-v2", stdout=out)
    assert codes(OPS) == every_view_permission() | ACTIONS | OPS_RECIPIENT
    assert codes(READ_ONLY) == every_view_permission()
    text = out.getvalue()
    assert "Ops: " in text
    assert "updated (+1, -1)" in text
    assert "  + mailpieces.view_mailpiece" in text
    assert "  - campaigns.delete_campaignrecipient" in text
    assert "Read-only: " in text
    assert "created" in text


def test_the_migration_runs_the_same_function_and_recreates_missing_rows():
    Group.objects.filter(name__in=[OPS, READ_ONLY]).delete()
    Permission.objects.filter(codename__in=[c.split(".")[1] for c in ACTIONS]).delete()
    migration = importlib.import_module("campaigns.migrations.0007_ops_groups")
    migration.create_groups(apps, type("Editor", (), {"connection": type("C", (), {"alias": "default"})})())
    assert codes(READ_ONLY) == every_view_permission()
    assert codes(OPS) == every_view_permission() | ACTIONS | OPS_RECIPIENT


def test_groups_setup_reports_what_it_changed():
    Group.objects.get(name=OPS).permissions.clear()
    changes = {c.name: c for c in groups_setup()}
    assert not changes[READ_ONLY].added
    assert not changes[READ_ONLY].removed
    assert set(changes[OPS].added) == codes(OPS)
    assert changes[OPS].total == len(codes(OPS))


# --- the helpers ---------------------------------------------------------------------


def test_ops_may_run_the_actions_read_only_and_plain_staff_may_not(user_in):
    ops, read_only, staff = user_in(OPS), user_in(READ_ONLY), user_in()
    for check in (can_retry, can_revalidate, can_cancel, can_import):
        assert check(ops)
        assert not check(read_only)
        assert not check(staff)


def test_each_helper_asks_its_own_permission(user_in):
    user = user_in()
    perms = {
        can_retry: "retry_recipient",
        can_revalidate: "revalidate_recipient",
        can_cancel: "cancel_recipient",
        can_import: "add_campaignrecipient",
    }
    for check, codename in perms.items():
        user.user_permissions.set([Permission.objects.get(codename=codename)])
        user = type(user).objects.get(pk=user.pk)
        assert {c(user) for c in perms} == {True, False}
        assert check(user)


def test_superusers_pass_everything_and_inactive_users_nothing(user_in):
    root = user_in(is_superuser=True)
    sent = CampaignRecipientFactory(status=S.SENT)
    assert can_retry(root)
    assert can_revalidate(root)
    assert can_cancel(root)
    assert can_edit_address(root, sent)
    gone = user_in(OPS, is_active=False)
    assert not can_retry(gone)
    assert not can_edit_address(gone, CampaignRecipientFactory())


@pytest.mark.parametrize("status", [S.SCHEDULED, S.SENDING, S.SENT, S.RECEIVED])
def test_ops_may_not_edit_the_address_of_a_mailed_recipient(user_in, status):
    assert not can_edit_address(user_in(OPS), CampaignRecipientFactory(status=status))


@pytest.mark.parametrize("status", [S.PENDING, S.SKIPPED, S.BLACKLISTED, S.ERROR, S.PROOFED, S.SENDING_STAGED])
def test_ops_may_edit_the_address_before_mailing(user_in, status):
    ops = user_in(OPS)
    assert can_edit_address(ops, CampaignRecipientFactory(status=status))
    assert can_edit_address(ops)  # the add form: no recipient yet
    assert not can_edit_address(user_in(READ_ONLY), CampaignRecipientFactory(status=status))


def test_a_live_mailpiece_locks_the_address_a_dead_one_does_not(user_in):
    ops = user_in(OPS)
    refused = CampaignRecipientFactory(status=S.ERROR)
    MailpieceFactory(recipient=refused, status=Mailpiece.Status.ERROR)
    MailpieceFactory(recipient=refused, status=Mailpiece.Status.CANCELLED, printer_id="sbx_cancelled")
    assert can_edit_address(ops, refused)  # the printer refused it: ops fix it and retry
    live = CampaignRecipientFactory(status=S.ERROR)
    MailpieceFactory(recipient=live, status=Mailpiece.Status.SUBMITTED)
    assert not can_edit_address(ops, live)


def test_a_row_queued_again_after_a_sent_key_is_locked(user_in):
    # Requeued after a transient printer failure: the printer may hold the piece.
    r = CampaignRecipientFactory(status=S.SENDING_STAGED, first_attempt_at=timezone.now())
    assert not can_edit_address(user_in(OPS), r)


# --- through the admin's own checks -----------------------------------------------------


def test_the_admin_lets_read_only_view_and_nothing_else_and_ops_never_delete(user_in):
    model_admin = admin.site._registry[CampaignRecipient]
    request = RequestFactory().get("/")
    request.user = user_in(READ_ONLY)
    assert model_admin.has_view_permission(request)
    assert not model_admin.has_change_permission(request)
    assert not model_admin.has_delete_permission(request)
    assert not model_admin.has_add_permission(request)
    request.user = user_in(OPS)
    assert model_admin.has_view_permission(request)
    assert model_admin.has_change_permission(request)
    assert not model_admin.has_delete_permission(request)
    for model in apps.get_app_config("mailpieces").get_models():
        if model in admin.site._registry:
            assert admin.site._registry[model].has_view_permission(request)
