"""System checks: webhook verification fails closed, and says so at start-up."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, register


@register(Tags.security, deploy=True)
def check_webhook_secrets(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Every enabled printer needs its webhook secret: without one, each of its
    webhooks is rejected (never accepted unverified)."""
    problems: list[CheckMessage] = []
    for kind, conf in settings.PRINTERS_CONF.items():
        if conf.get("enabled") and not conf.get("webhook_secret"):
            problems.append(
                Error(
                    f"{kind.upper()}_WEBHOOK_SECRET is not set: every {kind} webhook will be rejected.",
                    hint=f"Set {kind.upper()}_WEBHOOK_SECRET, or remove {kind} from ENABLED_PRINTERS.",
                    id="mailpieces.E001",
                )
            )
    if settings.PRINTERS_CONF.get("intelliprint", {}).get("enabled"):
        secret = settings.PRINTERS_CONF["intelliprint"].get("webhook_secret") or ""
        if secret and not secret.startswith("whsec_"):
            problems.append(Error("INTELLIPRINT_WEBHOOK_SECRET must be a Svix secret (whsec_…).", id="mailpieces.E002"))
    return problems
