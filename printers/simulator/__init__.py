"""Local printer simulator (see :mod:`printers.simulator.core` for the API).

This package is the server core (server, store, faults, webhooks, registry); each
vendor's handler lives in its printer's folder and is named in ``VENDORS``.
"""

from __future__ import annotations

from printers.simulator.core import (
    KEY_TTL_S,
    VENDORS,
    CapturedRequest,
    Delivery,
    Fault,
    Piece,
    PieceStore,
    Simulator,
    VendorHandler,
    WebhookEvent,
    WebhookStep,
)

__all__ = [
    "KEY_TTL_S",
    "VENDORS",
    "CapturedRequest",
    "Delivery",
    "Fault",
    "Piece",
    "PieceStore",
    "Simulator",
    "VendorHandler",
    "WebhookEvent",
    "WebhookStep",
]
