"""Webhook processing as a django-q2 Schedule every 15 s (the spec's webhook
flow), the backstop for a lost doorbell.  A cron with a seconds field
(croniter); the cluster's scheduler looks every ~15 s, so a run starts 15-30 s
after the last at worst.  No catch-up: a missed slot is simply the next one."""

from django.db import migrations

NAME = "process webhooks"


def create(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.update_or_create(
        name=NAME,
        defaults={
            "func": "mailpieces.tasks.process_webhooks_task",
            "schedule_type": "C",
            "cron": "* * * * * */15",
            "repeats": -1,
        },
    )


def remove(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("mailpieces", "0003_webhook_inbox"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]
    operations = [migrations.RunPython(create, remove)]
