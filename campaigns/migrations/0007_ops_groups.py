"""The Ops and Read-only staff groups, and the recipient action permissions
(retry, re-validate, cancel) they rest on: see common/permissions.py.

The same function as ``manage.py setup_groups``, which brings the groups up
to date later (e.g. once new models exist, their view permissions too).
Reversing keeps the groups: they may hold users by then.
"""

from django.db import migrations


def create_groups(apps, schema_editor):
    from common.permissions import groups_setup

    groups_setup(apps=apps, using=schema_editor.connection.alias)


class Migration(migrations.Migration):
    dependencies = [
        ("campaigns", "0006_mailing_first_attempt"),
        # Every model the groups may view must exist in this state.
        ("mailpieces", "0004_webhook_schedule"),
        ("printers", "0001_rate_limit_slots"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_groups, migrations.RunPython.noop)]
