"""Vendor handlers: the ``VendorHandler`` base class and the explicit vendor registry.

``VENDORS`` maps a vendor name to the dotted path of its handler class, which
lives in the printer's own folder (``printers/<vendor>/simulator.py``).  Nothing
registers itself at import: a ``Simulator`` imports the handlers it serves when
it is created, so adding a simulated printer is one line here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from importlib import import_module
from typing import TYPE_CHECKING, Any, ClassVar

from printers.simulator.store import Piece, PieceStore
from printers.simulator.webhooks import WebhookEvent

if TYPE_CHECKING:
    from printers.simulator.server import Simulator

VENDORS: dict[str, str] = {
    "sandbox": "printers.sandbox.simulator.SandboxHandler",
    "lob": "printers.lob.simulator.LobHandler",
    "stannp": "printers.stannp.simulator.StannpHandler",
    "intelliprint": "printers.intelliprint.simulator.IntelliPrintHandler",
    "taylor": "printers.taylor.simulator.TaylorHandler",
}


def load_handler(spec: str | type[VendorHandler]) -> type[VendorHandler]:
    """The handler class a registry entry names, imported on first use."""
    if not isinstance(spec, str):
        return spec
    module_name, _, class_name = spec.rpartition(".")
    handler_cls: type[VendorHandler] = getattr(import_module(module_name), class_name)
    return handler_cls


class VendorHandler:
    """Base of the per-vendor request handlers.  One instance per simulator."""

    name: ClassVar[str] = ""
    lifecycle: ClassVar[tuple[str, ...]] = ()  # the happy path, for default timelines

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim

    @property
    def store(self) -> PieceStore:
        """The simulator's pieces, idempotency keys and clock."""
        return self.sim.store

    @property
    def secret(self) -> str:
        return self.sim.secrets.get(self.name, "")

    def handle(
        self, method: str, path: str, query: dict[str, list[str]], headers: Mapping[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        raise NotImplementedError

    def webhook(self, piece: Piece, event: WebhookEvent) -> tuple[bytes, dict[str, str]]:
        """The signed body and headers of ``event`` (its ``status`` in the vendor's vocabulary) for ``piece``."""
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
