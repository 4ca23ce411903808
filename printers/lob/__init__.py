"""Lob (US): JSON postcards with idempotency keys and signed event webhooks.

One folder per printer: ``client`` (the :class:`~printers.base.Printer`), ``approval``
(its recipient rules), ``status`` (its status table), ``simulator`` (its simulated
API) and ``fixtures``/``tests``.  The registries name these by dotted path.
"""

from __future__ import annotations

from printers.lob.client import LobPrinter

__all__ = ["LobPrinter"]
