"""Printer registry: kind -> dotted path of the printer class, imported lazily.

``get_printer_class`` needs no settings (approval rules, countries and status
maps are class attributes); ``get_printer`` builds a configured instance from
``settings.PRINTERS_CONF[kind]``. Every printer class is constructed as
``PrinterClass(conf)`` with that dict (keys: enabled, api_key, base_url,
webhook_secret, plus per-printer extras).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any, cast

from django.conf import settings

from printers.base import Printer, PrinterError

PRINTERS: dict[str, str] = {
    "sandbox": "printers.sandbox.SandboxPrinter",
    "lob": "printers.lob.LobPrinter",
    "stannp": "printers.stannp.StannpPrinter",
    "intelliprint": "printers.intelliprint.IntelliPrintPrinter",
    "taylor": "printers.taylor.TaylorPrinter",
}


def get_printer_class(kind: str) -> type[Printer]:
    """The printer class registered for ``kind``; raises a permanent error for an unknown kind."""
    try:
        dotted = PRINTERS[kind]
    except KeyError:
        raise PrinterError(
            f"unknown printer kind {kind!r}; known kinds: {', '.join(sorted(PRINTERS))}", permanent=True
        ) from None
    module_name, _, class_name = dotted.rpartition(".")
    cls = getattr(import_module(module_name), class_name)
    return cast(type[Printer], cls)


def printer_conf(kind: str) -> dict[str, Any]:
    """A copy of ``settings.PRINTERS_CONF[kind]`` (empty when absent)."""
    return dict(getattr(settings, "PRINTERS_CONF", {}).get(kind) or {})


def get_printer(kind: str) -> Printer:
    """A configured printer; disabled or unconfigured printers raise a permanent error."""
    cls = get_printer_class(kind)
    conf = printer_conf(kind)
    if not conf.get("enabled", False):
        raise PrinterError(
            f"printer {kind!r} is disabled: add it to ENABLED_PRINTERS to mail through it", permanent=True
        )
    # The sandbox talks to the local simulator and needs no key; vendors do.
    if cls.requires_api_key and not conf.get("api_key"):
        raise PrinterError(
            f"printer {kind!r} has no API key: set {kind.upper()}_API_KEY in the environment", permanent=True
        )
    factory: Any = cls
    return cast(Printer, factory(conf))


def printer_ready(kind: str) -> bool:
    """Whether this server can mail through ``kind`` (enabled, with its key)."""
    try:
        get_printer(kind)
    except PrinterError:
        return False
    return True
