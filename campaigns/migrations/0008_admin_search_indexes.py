"""Indexes of the recipient changelist at a million rows (issue 11, docs/ops.md):
each filter in the list's order, and the search's prefix lookups
(``campaigns.search.PrefixIndex``: a NOCASE column on SQLite, an
``UPPER(col) text_pattern_ops`` expression on PostgreSQL).  The campaign and
status index gains the id (it replaces ``recipient_campaign_status``, built
first so the stages always have one)."""

import campaigns.search
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("campaigns", "0007_ops_groups"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="campaignrecipient",
            index=models.Index(fields=["campaign", "status", "id"], name="recipient_campaign_status_id"),
        ),
        migrations.RemoveIndex(
            model_name="campaignrecipient",
            name="recipient_campaign_status",
        ),
        migrations.AddIndex(
            model_name="campaignrecipient",
            index=models.Index(fields=["campaign", "id"], name="recipient_campaign_id"),
        ),
        migrations.AddIndex(
            model_name="campaignrecipient",
            index=models.Index(fields=["status", "id"], name="recipient_status_id"),
        ),
        migrations.AddIndex(
            model_name="campaignrecipient",
            index=models.Index(
                condition=models.Q(("skip_reason", ""), _negated=True),
                fields=["skip_reason", "id"],
                name="recipient_skip_reason",
            ),
        ),
        migrations.AddIndex(
            model_name="campaignrecipient",
            index=models.Index(
                condition=models.Q(("error_message", ""), _negated=True),
                fields=["error_message", "id"],
                name="recipient_error_message",
            ),
        ),
        migrations.AddIndex(
            model_name="campaignrecipient",
            index=models.Index(
                condition=models.Q(campaigns.search.HasKey(models.F("json"), "approval_errors")),
                fields=["id"],
                name="recipient_approval_errors",
            ),
        ),
        migrations.AddIndex(
            model_name="campaignrecipient",
            index=campaigns.search.PrefixIndex(fields=["last_name", "first_name"], name="recipient_name_prefix"),
        ),
        migrations.AddIndex(
            model_name="campaignrecipient",
            index=campaigns.search.PrefixIndex(fields=["email"], name="recipient_email_prefix"),
        ),
        migrations.AddIndex(
            model_name="campaignrecipient",
            index=campaigns.search.PrefixIndex(fields=["zip"], name="recipient_zip_prefix"),
        ),
        migrations.AddIndex(
            model_name="campaignrecipient",
            index=campaigns.search.PrefixIndex(fields=["external_id"], name="recipient_external_id_prefix"),
        ),
    ]
