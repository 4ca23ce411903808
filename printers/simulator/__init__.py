"""Local printer simulator (see :mod:`printers.simulator.core` for the API).

Handler modules register themselves on import; :func:`load_handlers` imports
the ones that exist, so a missing vendor module only means that vendor is not
simulated.
"""

from __future__ import annotations

from importlib import import_module

from printers.simulator.core import (
    Delivery,
    Fault,
    Piece,
    Simulator,
    VendorHandler,
    WebhookEvent,
    WebhookStep,
    register_vendor,
)

HANDLER_MODULES = (
    "printers.simulator.sandbox",
    "printers.simulator.lob",
    "printers.simulator.stannp",
    "printers.simulator.intelliprint",
    "printers.simulator.taylor",
)


def load_handlers() -> None:
    for name in HANDLER_MODULES:
        try:
            import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:  # a real import error inside an existing module
                raise


__all__ = [
    "Delivery",
    "Fault",
    "Piece",
    "Simulator",
    "VendorHandler",
    "WebhookEvent",
    "WebhookStep",
    "load_handlers",
    "register_vendor",
]
