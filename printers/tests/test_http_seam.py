"""Every printer's calls through the one seam: pooled connections, plain-ASCII keys, a base URL that is set."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import pytest

from common import http as outbound
from printers.base import PrinterError
from printers.keys import submission_key
from printers.registry import PRINTERS, get_printer
from printers.simulator import Simulator
from printers.tests.test_keys import request_for

KEY = submission_key(org_id=7, recipient_id=4242, gen=0)
# Printers that send our idempotency key in a header (IntelliPrint has none).
KEYED = ("lob", "sandbox", "stannp", "taylor")
# Printers that send an API key (Basic for Lob and Stannp, Bearer for IntelliPrint and Taylor).
AUTHENTICATED = ("intelliprint", "lob", "stannp", "taylor")


def configure(settings: Any, kind: str, **changes: Any) -> None:
    conf = copy.deepcopy(settings.PRINTERS_CONF)
    conf[kind].update(changes)
    settings.PRINTERS_CONF = conf


@pytest.mark.parametrize("kind", sorted(PRINTERS))
def test_two_calls_to_a_printer_share_one_pooled_connection(kind: str, simulator: Simulator) -> None:
    printer = get_printer(kind)
    printer.submit(request_for(kind, KEY, 4242))
    printer.lookup(KEY)
    ports = {r.client_port for r in simulator.captured(kind)}
    assert len(simulator.captured(kind)) >= 2
    assert len(ports) == 1  # one TCP connection, kept alive across the calls
    assert outbound.client_for(simulator.url(kind)) is outbound.client_for(simulator.url("lob"))


def test_stopping_the_simulator_closes_its_pool(simulator: Simulator) -> None:
    client = outbound.client_for(simulator.url("sandbox"))
    get_printer("sandbox").lookup(KEY)
    simulator.stop()
    assert client.is_closed
    assert outbound.client_for(simulator.url("sandbox")) is not client


@pytest.mark.parametrize("key", ["pc:7:00004242:0é", "pc:7:00004242:0\r\nX-Evil: 1", "pc:7:00004242:0\u200b"])
@pytest.mark.parametrize("kind", KEYED)
def test_a_non_ascii_idempotency_key_is_a_permanent_error_and_sends_nothing(
    kind: str, key: str, simulator: Simulator
) -> None:
    request = request_for(kind, KEY, 4242)
    with pytest.raises(PrinterError, match="header holds a character that is not plain ASCII") as info:
        get_printer(kind).submit(dataclasses.replace(request, idempotency_key=key))
    assert info.value.permanent is True
    assert simulator.captured(kind, "POST") == []


@pytest.mark.parametrize("api_key", ["live_kéy", "live_key\u2019", "live_key\n"])
@pytest.mark.parametrize("kind", AUTHENTICATED)
def test_a_non_ascii_api_key_is_a_permanent_error_that_never_shows_the_key(
    kind: str, api_key: str, simulator: Simulator, settings: Any
) -> None:
    configure(settings, kind, api_key=api_key)
    with pytest.raises(PrinterError, match="the API key holds a character that is not plain ASCII") as info:
        get_printer(kind).submit(request_for(kind, KEY, 4242))
    assert info.value.permanent is True
    assert api_key.strip() not in info.value.message
    assert simulator.captured(kind) == []


@pytest.mark.parametrize(
    ("kind", "base_url"),
    [
        ("stannp", ""),
        ("intelliprint", ""),
        ("taylor", ""),
        ("lob", "api.lob.com/v1"),  # an empty Lob URL means Lob's own default: test a scheme-less one
        ("sandbox", "127.0.0.1:8765/sandbox/v1"),
        ("taylor", "ftp://taylor.example/v1"),
        ("stannp", "https:///v1"),
    ],
)
def test_a_missing_or_invalid_base_url_is_a_permanent_configuration_error(
    kind: str, base_url: str, settings: Any
) -> None:
    configure(settings, kind, enabled=True, api_key="test_key", base_url=base_url)
    with pytest.raises(PrinterError, match="base URL is missing or is not an http") as info:
        get_printer(kind).submit(request_for(kind, KEY, 4242))
    assert info.value.permanent is True
