"""Sandbox: the default printer of a fresh install, served by the local simulator.

One folder per printer: ``client`` (the :class:`~printers.base.Printer`), ``approval``
(its recipient rules), ``status`` (its status table), ``simulator`` (its simulated
API) and ``fixtures``/``tests``.  The registries name these by dotted path.
"""

from __future__ import annotations

from printers.sandbox.client import SandboxPrinter

__all__ = ["SandboxPrinter"]
