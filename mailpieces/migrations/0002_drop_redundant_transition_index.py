"""Drop the history's single-column mailpiece index: mailpiece_transition_by_obj
leads with the same column.  Only the index goes (Django's AlterField would
also drop and re-add the foreign key, re-checking every row under lock); see
campaigns 0003 for the recipient side."""

import django.db.models.deletion
from django.db import migrations, models


def _index(apps, schema_editor):
    model = apps.get_model("mailpieces", "mailpiecetransition")
    field = model._meta.get_field("mailpiece")
    return model, field, schema_editor._create_index_name(model._meta.db_table, [field.column])


def drop_index(apps, schema_editor):
    _model, _field, name = _index(apps, schema_editor)
    schema_editor.execute(f"DROP INDEX IF EXISTS {schema_editor.quote_name(name)}")


def create_index(apps, schema_editor):
    model, field, _name = _index(apps, schema_editor)
    schema_editor.execute(schema_editor._create_index_sql(model, fields=[field]))


class Migration(migrations.Migration):
    dependencies = [
        ("mailpieces", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="mailpiecetransition",
                    name="mailpiece",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="transitions",
                        to="mailpieces.mailpiece",
                    ),
                ),
            ],
            database_operations=[migrations.RunPython(drop_index, create_index)],
        ),
    ]
