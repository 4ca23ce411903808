"""The simulator's piece store: created pieces, idempotency keys and the injectable clock.

Thread-safe (one re-entrant lock, shared with the rest of the simulator); the clock can
be replaced (``clock=``) and jumped (``advance``) so tests can expire idempotency keys.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

KEY_TTL_S = 24 * 3600


@dataclass
class Piece:
    """One piece the simulated printer created.  ``status`` is in the vendor's vocabulary."""

    vendor: str
    id: str
    key: str | None = None  # idempotency key
    reference: str = ""  # ours, as the client sent it
    metadata: dict[str, str] = field(default_factory=dict)
    request: Any = None  # parsed request body, for replays that compare bodies
    response: Any = None  # stored response body, replayed verbatim
    status: str = ""
    created_at: float = 0.0  # simulator clock
    physical: bool = True  # False until it would print (IntelliPrint: on confirm)
    cancelled: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class PieceStore:
    """Pieces per vendor, idempotency keys with a TTL, ids and the (offsettable) clock."""

    def __init__(self, *, clock: Callable[[], float] | None = None, key_ttl_s: float = KEY_TTL_S) -> None:
        self.key_ttl_s = key_ttl_s
        self._clock = clock or time.time
        self._offset = 0.0
        self._lock = threading.RLock()
        self._ids = itertools.count(1)
        self._pieces: dict[str, dict[str, Piece]] = defaultdict(dict)
        self._keys: dict[tuple[str, str], tuple[str, float]] = {}
        # Called with each newly created piece (not replays), outside the lock.
        self.on_create: list[Callable[[Piece], None]] = []

    # ------------------------------------------------------------------ clock and ids
    def now(self) -> float:
        return self._clock() + self._offset

    def advance(self, seconds: float) -> None:
        """Jump the simulator clock (idempotency-key expiry, event times)."""
        with self._lock:
            self._offset += seconds

    def new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):08d}{random.randrange(16**6):06x}"

    # ------------------------------------------------------------------ store
    def create_or_replay(self, vendor: str, *, key: str | None, build: Callable[[], Piece]) -> tuple[Piece, bool]:
        """Atomically return ``(existing, True)`` for a live key, else store ``build()`` as new."""
        with self._lock:
            if key:
                known = self._keys.get((vendor, key))
                if known and self.now() - known[1] < self.key_ttl_s:
                    return self._pieces[vendor][known[0]], True
            piece = build()
            piece.key = key
            piece.created_at = piece.created_at or self.now()
            self._pieces[vendor][piece.id] = piece
            if key:
                self._keys[(vendor, key)] = (piece.id, self.now())
        for callback in self.on_create:
            callback(piece)
        return piece, False

    def piece(self, vendor: str, piece_id: str) -> Piece | None:
        with self._lock:
            return self._pieces[vendor].get(piece_id)

    def pieces(self, vendor: str) -> list[Piece]:
        with self._lock:
            return list(self._pieces[vendor].values())

    def update(self, vendor: str, piece_id: str, **changes: Any) -> Piece:
        with self._lock:
            piece = self._pieces[vendor][piece_id]
            for name, value in changes.items():
                setattr(piece, name, value)
            return piece

    def physical_pieces(self, vendor: str, key: str | None = None) -> int:
        """Pieces that would print: all of ``vendor``'s, or those under ``key`` (idempotency key or reference).

        Handlers clear ``Piece.physical`` for pieces that will never print (cancelled, test mode, unconfirmed)."""
        with self._lock:
            return sum(
                1 for p in self._pieces[vendor].values() if p.physical and (key is None or key in (p.key, p.reference))
            )

    def total_physical_pieces(self) -> int:
        with self._lock:
            return sum(self.physical_pieces(v) for v in list(self._pieces))
