"""Webhook timelines for the simulator: which events a piece goes through, and firing them.

A timeline is a list of ``WebhookStep``; duplicates, reordering and missing events are
expressed in it, so tests can replay what real printers do to our webhook endpoints.
Each step is rendered (and signed) by the vendor handler's ``webhook(piece, event)``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx

from printers.simulator.store import PieceStore

if TYPE_CHECKING:
    from printers.simulator.registry import VendorHandler


@dataclass(frozen=True)
class WebhookEvent:
    """The event a handler's ``webhook()`` renders: passed to it as an argument."""

    id: str
    status: str  # in the vendor's vocabulary
    occurred_at: dt.datetime


@dataclass(frozen=True)
class WebhookStep:
    """One webhook delivery in a timeline: ``piece_id`` reaches ``status`` at ``at`` (sim clock)."""

    vendor: str
    piece_id: str
    status: str
    at: float
    repeat: int = 1  # > 1: the same event (same id, same body) is delivered again


@dataclass(frozen=True)
class Delivery:
    step: WebhookStep
    url: str
    body: bytes
    headers: dict[str, str]
    status_code: int = 0
    response_text: str = ""


class WebhookTimelines:
    """The simulator's webhook half: builds timelines from stored pieces and fires them."""

    def __init__(self, store: PieceStore, handlers: Mapping[str, VendorHandler]) -> None:
        self.store = store
        self.handlers = handlers

    def timeline(
        self,
        vendor: str,
        piece_id: str,
        statuses: Sequence[str] | None = None,
        *,
        spacing_s: float = 60.0,
        duplicates: Iterable[int] = (),
        order: Sequence[int] | None = None,
        missing: Iterable[int] = (),
    ) -> list[WebhookStep]:
        """Steps for one piece: ``statuses`` (default: the handler's lifecycle) happen
        ``spacing_s`` apart; indices in ``duplicates`` are delivered twice, ``missing``
        never, and ``order`` (a permutation of indices) sets the delivery order."""
        piece = self.store.piece(vendor, piece_id)
        if piece is None:
            raise KeyError(f"{vendor} piece {piece_id!r} does not exist in the simulator")
        names = list(statuses if statuses is not None else self.handlers[vendor].lifecycle)
        dup, skip = set(duplicates), set(missing)
        steps = [
            WebhookStep(vendor, piece_id, s, piece.created_at + (i + 1) * spacing_s, 2 if i in dup else 1)
            for i, s in enumerate(names)
        ]
        indices = list(order) if order is not None else list(range(len(steps)))
        return [steps[i] for i in indices if i not in skip]

    def build_webhooks(self, target: Callable[[str], str] | str, steps: Iterable[WebhookStep]) -> list[Delivery]:
        """Signed deliveries (not sent): each step rendered once, repeated ``repeat`` times."""
        out: list[Delivery] = []
        for step in steps:
            handler = self.handlers[step.vendor]
            piece = self.store.update(step.vendor, step.piece_id, status=step.status)
            event = WebhookEvent(self.store.new_id("evt_"), step.status, dt.datetime.fromtimestamp(step.at, tz=dt.UTC))
            body, headers = handler.webhook(piece, event)
            url = target(step.vendor) if callable(target) else target
            out.extend(Delivery(step, url, body, headers) for _ in range(step.repeat))
        return out

    def fire_webhooks(
        self,
        target: Callable[[str], str] | str,
        steps: Iterable[WebhookStep],
        *,
        send: Callable[[str, bytes, dict[str, str]], tuple[int, str]] | None = None,
    ) -> list[Delivery]:
        """POST the signed webhooks in order; ``send`` overrides the transport (e.g. Django's test client)."""
        sender = send or _http_post
        results = []
        for delivery in self.build_webhooks(target, steps):
            code, text = sender(delivery.url, delivery.body, delivery.headers)
            results.append(Delivery(delivery.step, delivery.url, delivery.body, delivery.headers, code, text[:500]))
        return results


def _http_post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    try:
        response = httpx.post(url, content=body, headers=headers, timeout=10.0)
    except httpx.HTTPError as exc:
        return 0, f"{type(exc).__name__}: {exc}"
    return response.status_code, response.text
