"""Shared printer test fixtures: a live local simulator wired into settings."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest

from printers.simulator import Simulator


@pytest.fixture
def simulator(settings: Any) -> Iterator[Simulator]:
    """A simulator on 127.0.0.1 (random port) for every registered vendor.

    ``settings.PRINTERS_CONF[kind]`` points at it (base_url, an API key, enabled),
    and it signs webhooks with the test settings' webhook secrets, so
    ``get_printer(kind)`` talks to it and ``verify_webhook`` accepts what it fires.
    Clients get a short timeout so "timeout after create" tests stay fast.
    """
    conf = copy.deepcopy(settings.PRINTERS_CONF)
    sim = Simulator(secrets={kind: str(c.get("webhook_secret") or "") for kind, c in conf.items()})
    for kind, kind_conf in conf.items():
        kind_conf.update(base_url=sim.url(kind), enabled=True, api_key=kind_conf.get("api_key") or f"test_{kind}_key")
    settings.PRINTERS_CONF = conf
    settings.PRINTER_TIMEOUT_S = 0.5
    sim.start()
    try:
        yield sim
    finally:
        sim.stop()
