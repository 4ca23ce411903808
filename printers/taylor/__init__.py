"""Taylor (US): numeric status codes and a wire format of our own.

One folder per printer: ``client`` (the :class:`~printers.base.Printer`), ``approval``
(its recipient rules), ``status`` (its status table), ``simulator`` (its simulated
API) and ``fixtures``/``tests``.  The registries name these by dotted path.
"""

from __future__ import annotations

from printers.taylor.client import TaylorPrinter

__all__ = ["TaylorPrinter"]
