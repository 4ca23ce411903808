"""Who may do what to recipients, and the two staff groups that say it.

Two groups, made by the data migration ``campaigns.0007_ops_groups`` and kept
in step by ``manage.py setup_groups`` (both call :func:`groups_setup`):

* **Read-only**: views every model of :data:`VIEW_APPS`, changes nothing.
* **Ops**: the same, plus the recipient actions (retry, re-validate, cancel)
  and editing a recipient's address until it is mailed.  Never deletes.

The actions' permissions are custom ones on ``CampaignRecipient``
(:data:`ACTION_PERMISSIONS`).  They are created here, not declared in the
model's ``Meta.permissions``, so the model's migration state is untouched; a
later ``Meta.permissions`` with the same codenames would find the rows
already there (Django's ``create_permissions`` only adds what is missing).

The ``can_*`` helpers are what the admin asks.  Superusers pass every one of
them (Django's ``has_perm`` does so for active superusers).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.apps import apps as global_apps
from django.db import DEFAULT_DB_ALIAS

from campaigns.enums import CampaignRecipientStatus as Status

OPS = "Ops"
READ_ONLY = "Read-only"

# The apps whose every model both groups may view: the pipeline's data and
# the task queue's.  Users, groups, sessions and the admin log are not for them.
VIEW_APPS = ("campaigns", "mailpieces", "printers", "django_q")

RECIPIENT = ("campaigns", "campaignrecipient")

# codename (on CampaignRecipient) -> name, as Django would show it.
RETRY = "retry_recipient"
REVALIDATE = "revalidate_recipient"
CANCEL = "cancel_recipient"
ACTION_PERMISSIONS = {
    RETRY: "Can retry recipients in Error (proofing or mailing)",
    REVALIDATE: "Can re-validate skipped or blacklisted recipients",
    CANCEL: "Can cancel (archive) recipients",
}

# Ops' permissions besides viewing: the three actions, changing a recipient
# (its address, which :func:`can_edit_address` locks once mailed), and adding
# recipients, by hand or by importing a file (:func:`can_import`).
IMPORT = "add_campaignrecipient"
OPS_EXTRA = (
    ("campaigns", "change_campaignrecipient"),
    ("campaigns", IMPORT),
    *((RECIPIENT[0], codename) for codename in ACTION_PERMISSIONS),
)

# The recipient's address block, as the printer prints it: locked once mailed.
ADDRESS_FIELDS = ("first_name", "last_name", "company", "address1", "address2", "city", "state", "zip", "country")

# A recipient in one of these has been handed to the printer, or will be
# without anyone acting again (Scheduled: the printer may hold the piece).
MAILED_STATUSES = (Status.SCHEDULED, Status.SENDING, Status.SENT, Status.RECEIVED)


def can_retry(user: Any) -> bool:
    """May run "Retry from proofing" and "Retry sending"."""
    return bool(user.has_perm(f"campaigns.{RETRY}"))


def can_revalidate(user: Any) -> bool:
    """May run "Re-validate" on Skipped and Blacklisted recipients."""
    return bool(user.has_perm(f"campaigns.{REVALIDATE}"))


def can_cancel(user: Any) -> bool:
    """May cancel recipients ("Archive (exclude from campaign)")."""
    return bool(user.has_perm(f"campaigns.{CANCEL}"))


def can_import(user: Any) -> bool:
    """May import a file of recipients into a campaign (the admin's "Import
    recipients"): adding recipients, whichever way, every row validated."""
    return bool(user.has_perm(f"campaigns.{IMPORT}"))


def recipient_is_mailed(recipient: Any) -> bool:
    """The printer holds, or may hold, a piece for ``recipient``: its status
    is one of :data:`MAILED_STATUSES`, it has a live mailpiece (one not
    Cancelled or Error), or it is queued again after a submission whose
    outcome is unknown (SendingStaged with a key already sent)."""
    if recipient.pk is None:
        return False
    if recipient.status in MAILED_STATUSES:
        return True
    if recipient.status == Status.SENDING_STAGED and recipient.first_attempt_at is not None:
        return True
    from mailpieces.models import DEAD_STATUSES

    return bool(recipient.mailpieces.exclude(status__in=DEAD_STATUSES).exists())


def can_edit_address(user: Any, recipient: Any = None) -> bool:
    """May change the address fields (:data:`ADDRESS_FIELDS`) of ``recipient``:
    change permission on recipients, and the recipient not mailed yet (a card
    the printer holds would no longer match its record).  Superusers may
    always, to correct a record after the fact."""
    if not user.has_perm("campaigns.change_campaignrecipient"):
        return False
    if user.is_active and user.is_superuser:
        return True
    return recipient is None or not recipient_is_mailed(recipient)


# --- the groups ------------------------------------------------------------------------


@dataclass
class GroupChange:
    name: str
    created: bool
    added: list[str]
    removed: list[str]
    total: int

    def summary(self) -> str:
        state = "created" if self.created else "updated" if self.added or self.removed else "unchanged"
        return f"{self.name}: {self.total} permission(s), {state} (+{len(self.added)}, -{len(self.removed)})"


def _code(permission: Any) -> str:
    return f"{permission.content_type.app_label}.{permission.codename}"


def _permissions(Permission: Any, ContentType: Any, wanted: Iterable[tuple[str, str]], using: str) -> list[Any]:
    wanted = set(wanted)
    found = [
        p
        for p in Permission.objects.using(using)
        .filter(content_type__app_label__in={app for app, _ in wanted})
        .select_related("content_type")
        if (p.content_type.app_label, p.codename) in wanted
    ]
    missing = wanted - {(p.content_type.app_label, p.codename) for p in found}
    if missing:
        raise LookupError(f"permissions not found: {sorted(missing)}")
    return found


def groups_setup(*, apps: Any = global_apps, using: str = DEFAULT_DB_ALIAS) -> list[GroupChange]:
    """Create or bring up to date the Ops and Read-only groups, and the
    permissions they hold.  Idempotent; each group ends with exactly the
    permissions the policy above gives it (one added by hand is removed).

    ``apps`` is the migration's historical registry when the data migration
    calls it: the models' own permissions are created first (Django only does
    so after the last migration), so a fresh database gets complete groups."""
    from django.contrib.auth.management import create_permissions

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    ContentType = apps.get_model("contenttypes", "ContentType")

    view: set[tuple[str, str]] = set()
    for label in VIEW_APPS:
        try:
            app_config = apps.get_app_config(label)
        except LookupError:  # not installed, or not in this migration state
            continue
        if label in {c.label for c in global_apps.get_app_configs()}:
            create_permissions(global_apps.get_app_config(label), verbosity=0, using=using, apps=apps)
        for model in app_config.get_models():
            if "view" in model._meta.default_permissions:
                view.add((label, f"view_{model._meta.model_name}"))

    recipient_type, _ = ContentType.objects.using(using).get_or_create(app_label=RECIPIENT[0], model=RECIPIENT[1])
    for codename, name in ACTION_PERMISSIONS.items():
        Permission.objects.using(using).update_or_create(
            content_type=recipient_type, codename=codename, defaults={"name": name}
        )

    policy = {READ_ONLY: view, OPS: view | set(OPS_EXTRA)}
    changes = []
    for name, wanted in policy.items():
        group, created = Group.objects.using(using).get_or_create(name=name)
        perms = _permissions(Permission, ContentType, wanted, using)
        before = {_code(p) for p in group.permissions.select_related("content_type")}
        group.permissions.set(perms)
        after = {_code(p) for p in perms}
        changes.append(
            GroupChange(
                name=name,
                created=created,
                added=sorted(after - before),
                removed=sorted(before - after),
                total=len(after),
            )
        )
    return changes
