"""US recipients imported with a ZIP a spreadsheet stripped of its leading
zeros (2134 for 02134) are keyed as the import now keys them: the same file
imported again finds them instead of adding each person a second time.

For every US recipient whose ZIP ``common.geo.us_zip_normalize`` repairs:
the natural key is derived again from the repaired ZIP (unless another
recipient of the campaign already has that key, or is given it in this run:
the two are then the same person, and the old key stays so nothing is merged
silently); the ZIP itself is repaired only on recipients with no proof and
no attempt yet (a card made, or a request sent, keeps the ZIP it shows)."""

from django.db import migrations

ZIP_SHORT = r"^[0-9]{3,4}(-[0-9]{4})?$|^[0-9]{7,9}$"
MAILED = ("Scheduled", "Sending", "Sent", "Received")
BATCH = 1000


def repair(apps, schema_editor):
    from campaigns.keys import natural_key
    from common.geo import us_zip_normalize

    recipient = apps.get_model("campaigns", "CampaignRecipient")
    rows = recipient.objects.filter(country="US", zip__regex=ZIP_SHORT).order_by("pk")
    changed = []
    given: set[tuple[int, str]] = set()  # keys handed out in this run, not yet written
    for r in rows.iterator(chunk_size=BATCH):
        fixed = us_zip_normalize(r.zip)
        if fixed == r.zip:
            continue
        if not r.external_id:
            data = {f: getattr(r, f) for f in ("first_name", "last_name", "address1", "country")}
            key = natural_key({**data, "zip": fixed})
            taken = (r.campaign_id, key) in given
            if not taken and not recipient.objects.filter(campaign_id=r.campaign_id, natural_key=key).exists():
                r.natural_key = key
                given.add((r.campaign_id, key))
        if r.status not in MAILED and not r.proof_url and r.first_attempt_at is None:
            r.zip = fixed
        changed.append(r)
        if len(changed) >= BATCH:
            recipient.objects.bulk_update(changed, ["natural_key", "zip"])
            changed = []
    if changed:
        recipient.objects.bulk_update(changed, ["natural_key", "zip"])


class Migration(migrations.Migration):
    dependencies = [("campaigns", "0010_blocklist_keys_restore_zip_zeros")]

    operations = [migrations.RunPython(repair, migrations.RunPython.noop)]
