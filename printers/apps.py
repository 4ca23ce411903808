from django.apps import AppConfig


class PrintersConfig(AppConfig):
    """No models: registered so the printer simulator's management command is found."""

    name = "printers"
