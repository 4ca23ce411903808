"""Stannp (UK, US, CA): form-encoded postcards and batched webhooks.

One folder per printer: ``client`` (the :class:`~printers.base.Printer`), ``approval``
(its recipient rules), ``status`` (its status table), ``simulator`` (its simulated
API) and ``fixtures``/``tests``.  The registries name these by dotted path.
"""

from __future__ import annotations

from printers.stannp.client import StannpPrinter

__all__ = ["StannpPrinter"]
