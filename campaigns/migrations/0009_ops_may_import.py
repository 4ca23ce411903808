"""Ops may import recipients (and add one by hand): the campaign page offered
them "Import recipients" and then refused them with a 403.  The same
``groups_setup`` as 0007 brings the groups to the policy in
common/permissions.py (Ops gains ``campaigns.add_campaignrecipient``).
Reversing keeps the groups as they are."""

from django.db import migrations


def update_groups(apps, schema_editor):
    from common.permissions import groups_setup

    groups_setup(apps=apps, using=schema_editor.connection.alias)


class Migration(migrations.Migration):
    dependencies = [("campaigns", "0008_admin_search_indexes")]

    operations = [migrations.RunPython(update_groups, migrations.RunPython.noop)]
