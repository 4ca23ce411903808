"""Start-up checks on the printer configuration.

An enabled printer without a base URL cannot reach anything: every call
would fail the same way, and a worker retrying it as a network hiccup would
retry forever.  It is a configuration error, so it is reported when the
process starts (``manage.py check``, ``runserver``, ``migrate``), naming the
variable to set.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import CheckMessage, Error, register


def _problem(base_url: str) -> str:
    if not base_url.strip():
        return "is empty"
    parts = urlsplit(base_url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"is {base_url!r}, not an http(s) URL with a host"
    return ""


@register()
def check_printer_base_urls(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Every enabled printer needs a base URL its client can call."""
    problems: list[CheckMessage] = []
    for kind, conf in sorted(getattr(settings, "PRINTERS_CONF", {}).items()):
        if not conf.get("enabled"):
            continue
        variable = f"{kind.upper()}_BASE_URL"
        problem = _problem(str(conf.get("base_url") or ""))
        if problem:
            problems.append(
                Error(
                    f"The {kind} printer is enabled but its base URL {problem}: nothing can be sent to {kind}.",
                    hint=f"Set {variable} to the printer's API address, or remove {kind} from ENABLED_PRINTERS.",
                    id="config.E001",
                )
            )
    return problems
