"""Vendor handlers: the ``VendorHandler`` base class and the vendor name → handler registry.

Handler modules (``printers/simulator/<vendor>.py``) call ``register_vendor`` at import;
each ``Simulator`` instantiates the registered handlers when it is created.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from printers.simulator.store import Piece
from printers.simulator.webhooks import WebhookEvent, current_event

if TYPE_CHECKING:
    from printers.simulator.server import Simulator

_HANDLERS: dict[str, type[VendorHandler]] = {}


def register_vendor(name: str, handler_cls: type[VendorHandler]) -> None:
    """Make ``/<name>/...`` served by ``handler_cls`` in every simulator started afterwards."""
    _HANDLERS[name] = handler_cls


def registered_vendors() -> dict[str, type[VendorHandler]]:
    return dict(_HANDLERS)


class VendorHandler:
    """Base of the per-vendor request handlers.  One instance per simulator."""

    name: ClassVar[str] = ""
    lifecycle: ClassVar[tuple[str, ...]] = ()  # the happy path, for default timelines

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim

    @property
    def secret(self) -> str:
        return self.sim.secrets.get(self.name, "")

    @property
    def event(self) -> WebhookEvent:
        return current_event.get()

    def handle(
        self, method: str, path: str, query: dict[str, list[str]], headers: Mapping[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        raise NotImplementedError

    def webhook(self, piece: Piece, status: str) -> tuple[bytes, dict[str, str]]:
        raise NotImplementedError

    def error_body(self, status: int, message: str, code: str) -> bytes:
        """The vendor's error envelope (Lob's shape by default)."""
        return json.dumps({"error": {"message": message, "status_code": status, "code": code}}).encode()

    def json_response(
        self, status: int, payload: Any, headers: Mapping[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        return status, {"Content-Type": "application/json", **(headers or {})}, json.dumps(payload).encode()

    def error(self, status: int, message: str, code: str) -> tuple[int, dict[str, str], bytes]:
        return status, {"Content-Type": "application/json"}, self.error_body(status, message, code)
