"""Blocklist keys derived again: a US ZIP that a spreadsheet stripped of its
leading zeros (2134 for 02134) now keys as the ZIP it is, as imported
recipients' ZIPs are repaired (common.geo.us_zip_normalize).  Only entries
whose key changes are written; one whose new key another entry of the
organization already has keeps its old key (the two are the same address;
ops may delete one)."""

from django.db import migrations


def derive_again(apps, schema_editor):
    from campaigns.keys import blocklist_entry_key

    entry_model = apps.get_model("campaigns", "BlocklistEntry")
    taken = set(entry_model.objects.values_list("organization_id", "key"))
    for entry in entry_model.objects.exclude(zip="").iterator():
        key = blocklist_entry_key(address1=entry.address1, zip=entry.zip, country=entry.country, email=entry.email)
        if key == entry.key or (entry.organization_id, key) in taken:
            continue
        taken.discard((entry.organization_id, entry.key))
        taken.add((entry.organization_id, key))
        entry_model.objects.filter(pk=entry.pk).update(key=key)


class Migration(migrations.Migration):
    dependencies = [("campaigns", "0009_ops_may_import")]

    operations = [migrations.RunPython(derive_again, migrations.RunPython.noop)]
