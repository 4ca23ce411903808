"""The simulator in-process (``Simulator.in_process()``): the same answers and
faults as over HTTP, through an httpx transport, with no socket.  The HTTP
server is never started here, so a request that went to the network would
hang until the client's timeout and fail these tests."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from common.http import client_for
from printers.base import Address, PrinterError
from printers.sandbox.client import SandboxPrinter
from printers.simulator import Fault, Simulator
from printers.testing import configured, make_request

TO = Address(name="Ann Lee", address1="185 Berry St", city="San Francisco", state="CA", zip="94107")


@pytest.fixture
def sim(settings: Any) -> Iterator[Simulator]:
    conf = copy.deepcopy(settings.PRINTERS_CONF)
    simulator = Simulator(vendors=["sandbox"])
    conf["sandbox"].update(base_url=simulator.url("sandbox"), enabled=True)
    settings.PRINTERS_CONF = conf
    settings.PRINTER_TIMEOUT_S = 0.5
    simulator.in_process()
    try:
        yield simulator
    finally:
        simulator.stop()


def submit(**changes: Any) -> str:
    return configured(SandboxPrinter).submit(make_request(**{"to": TO, **changes})).printer_id


def test_a_submission_is_answered_captured_and_replayed_without_a_socket(sim):
    first = submit()
    assert first.startswith("sbx_")
    assert submit() == first  # the same key: the same piece
    assert sim.physical_pieces("sandbox") == 1
    [sent, _] = sim.captured("sandbox", "POST")
    assert sent.path == "/v1/pieces"
    assert sent.headers["idempotency-key"] == "pc:7:4242:0:key"


def test_a_refusal_and_an_injected_429_read_as_over_http(sim):
    with pytest.raises(PrinterError) as refused:
        submit(to=Address(name="X", address1="1 Reject Rd", zip="1"))
    assert (refused.value.permanent, refused.value.code) == (True, "address_rejected")
    sim.inject("sandbox", 429)
    with pytest.raises(PrinterError) as limited:
        submit()
    assert limited.value.permanent is False
    assert limited.value.status_code == 429
    assert limited.value.retry_after is not None


@pytest.mark.parametrize("kind", ["timeout_after_create", "drop_after_create"])
def test_a_cut_after_create_is_transient_and_the_piece_exists(sim, kind):
    sim.inject("sandbox", Fault(kind, 5.0))  # hangs no longer than the client's 0.5 s
    with pytest.raises(PrinterError) as cut:
        submit()
    assert cut.value.permanent is False
    assert sim.physical_pieces("sandbox") == 1
    submit()  # the replay finds it: still one
    assert sim.physical_pieces("sandbox") == 1


def test_stop_gives_the_origin_back_to_the_network(sim):
    assert isinstance(client_for(sim.base_url)._transport, httpx.BaseTransport)
    mounted = client_for(sim.base_url)._transport
    sim.stop()
    assert client_for(sim.base_url)._transport is not mounted
    assert isinstance(client_for(sim.base_url)._transport, httpx.HTTPTransport)
