"""Drop the single-column indexes other indexes already cover (docs/decisions.md):
every recipient move rewrote all of them.  Only the indexes go: Django's own
AlterField would also drop and re-add the foreign keys, re-checking every row
of both tables under lock."""

import django.db.models.deletion
import django_fsm
from django.db import migrations, models

# (model, field): the index Django made for ``db_index``/the foreign key, and
# on PostgreSQL the LIKE twin of the status index.
DROPPED = [("campaignrecipient", "campaign"), ("campaignrecipient", "status"), ("recipienttransition", "recipient")]


def _index_names(apps, schema_editor):
    for model_name, field_name in DROPPED:
        model = apps.get_model("campaigns", model_name)
        column = model._meta.get_field(field_name).column
        name = schema_editor._create_index_name(model._meta.db_table, [column])
        yield model, field_name, name


def drop_indexes(apps, schema_editor):
    for _model, _field, name in _index_names(apps, schema_editor):
        for index in (name, f"{name}_like"):
            schema_editor.execute(f"DROP INDEX IF EXISTS {schema_editor.quote_name(index)}")


def create_indexes(apps, schema_editor):
    for model, field_name, _name in _index_names(apps, schema_editor):
        field = model._meta.get_field(field_name)
        schema_editor.execute(schema_editor._create_index_sql(model, fields=[field]))
        like = getattr(schema_editor, "_create_like_index_sql", None)  # PostgreSQL only
        if like is not None and (sql := like(model, field)) is not None:
            schema_editor.execute(sql)


class Migration(migrations.Migration):
    dependencies = [
        ("campaigns", "0002_blocklist_key_and_spec_labels"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="campaignrecipient",
                    name="campaign",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="recipients",
                        to="campaigns.campaign",
                    ),
                ),
                migrations.AlterField(
                    model_name="campaignrecipient",
                    name="status",
                    field=django_fsm.FSMField(
                        choices=[
                            ("Pending", "Pending"),
                            ("ProofingStaged", "ProofingStaged"),
                            ("Proofing", "Proofing"),
                            ("Proofed", "Proofed"),
                            ("SendingStaged", "SendingStaged"),
                            ("Sending", "Sending"),
                            ("Sent", "Sent"),
                            ("Received", "Received"),
                            ("Scheduled", "Scheduled"),
                            ("Holdout", "Holdout"),
                            ("Skipped", "Skipped"),
                            ("AddressEnrichable", "AddressEnrichable"),
                            ("AddressEnriching", "AddressEnriching"),
                            ("Error", "Error"),
                            ("Archived", "Archived"),
                            ("Blacklisted", "Blacklisted"),
                        ],
                        default="Pending",
                        max_length=32,
                        protected=True,
                    ),
                ),
                migrations.AlterField(
                    model_name="recipienttransition",
                    name="recipient",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="transitions",
                        to="campaigns.campaignrecipient",
                    ),
                ),
            ],
            database_operations=[migrations.RunPython(drop_indexes, create_indexes)],
        ),
    ]
