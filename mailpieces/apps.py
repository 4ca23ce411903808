from django.apps import AppConfig


class MailpiecesConfig(AppConfig):
    name = "mailpieces"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from mailpieces import checks  # noqa: F401  (registers the system checks)
