from __future__ import annotations

from django.apps import AppConfig


class ProjectConfig(AppConfig):
    """The project package as an app, so its system checks are registered at start-up."""

    name = "config"
    label = "project"

    def ready(self) -> None:
        from config import checks  # noqa: F401  (registers the system checks)
