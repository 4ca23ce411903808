"""Local printer simulator (see :mod:`printers.simulator.core` for the API).

This package is the server core (server, store, faults, webhooks, registry); each
vendor's handler lives in its printer's folder and is named in ``VENDORS``.
The public names are ``core.__all__``, listed once there.
"""

from __future__ import annotations

from printers.simulator import core
from printers.simulator.core import *  # noqa: F403

__all__ = core.__all__
