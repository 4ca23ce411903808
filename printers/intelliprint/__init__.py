"""IntelliPrint (UK, Royal Mail): two-step print jobs and Svix-signed webhooks.

One folder per printer: ``client`` (the :class:`~printers.base.Printer`), ``approval``
(its recipient rules), ``status`` (its status table), ``simulator`` (its simulated
API) and ``fixtures``/``tests``.  The registries name these by dotted path.
"""

from __future__ import annotations

from printers.intelliprint.client import IntelliPrintPrinter

__all__ = ["IntelliPrintPrinter"]
