from __future__ import annotations

import socket

import httpx
import pytest

from printers import http
from printers.base import PrinterError
from printers.simulator import Fault


def _response(status: int, *, json=None, text: str = "", headers=None) -> httpx.Response:
    if json is not None:
        return httpx.Response(status, json=json, headers=headers)
    return httpx.Response(status, text=text, headers=headers)


@pytest.mark.parametrize("status", [200, 201, 204])
def test_it_accepts_2xx(status):
    http.raise_for_status(_response(status, text=""), vendor="lob")


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_it_classifies_408_429_and_5xx_as_transient(status):
    with pytest.raises(PrinterError) as info:
        http.raise_for_status(_response(status, text="busy"), vendor="lob")
    assert info.value.permanent is False
    assert info.value.status_code == status


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422])
def test_it_classifies_other_4xx_as_permanent(status):
    with pytest.raises(PrinterError) as info:
        http.raise_for_status(_response(status, text="no"), vendor="lob")
    assert info.value.permanent is True


def test_it_keeps_the_lob_error_message_and_code():
    body = {"error": {"message": "address too long", "status_code": 422, "code": "address_length_exceeds_limit"}}
    with pytest.raises(PrinterError) as info:
        http.raise_for_status(_response(422, json=body), vendor="lob")
    assert info.value.code == "address_length_exceeds_limit"
    assert "address too long" in info.value.message
    assert info.value.message.startswith("lob answered HTTP 422")


def test_it_keeps_a_stannp_style_error_string():
    with pytest.raises(PrinterError) as info:
        http.raise_for_status(_response(400, json={"success": False, "error": "Invalid postcode"}), vendor="stannp")
    assert "Invalid postcode" in info.value.message


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "7"}, 7.0),
        ({"retry-after": "3"}, 3.0),
        ({"X-Rate-Limit-Reset": "1000000050"}, 50.0),  # epoch seconds
        ({"RateLimit-Reset": "5"}, 5.0),  # seconds until reset
        ({"X-RateLimit-Reset": "12"}, 12.0),
        ({"Retry-After": "Sun, 09 Sep 2001 01:47:00 GMT"}, 20.0),
        ({"Retry-After": "soon"}, None),
        ({}, None),
    ],
)
def test_it_parses_retry_after_from_any_rate_limit_header(headers, expected):
    assert http.retry_after_seconds(headers, now=1_000_000_000.0) == expected


def test_it_puts_retry_after_on_a_429():
    response = _response(429, json={"error": {"code": "rate_limit_exceeded"}}, headers={"ratelimit-reset": "4"})
    with pytest.raises(PrinterError) as info:
        http.raise_for_status(response, vendor="lob")
    assert info.value.retry_after == 4.0
    assert info.value.code == "rate_limit_exceeded"


def test_it_turns_a_refused_connection_into_a_transient_error():
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(PrinterError) as info:
        http.request("GET", f"http://127.0.0.1:{port}/", timeout=0.5)
    assert info.value.permanent is False
    assert "network error" in info.value.message


def test_it_turns_a_timeout_into_a_transient_error(simulator):
    simulator.inject("sandbox", Fault.latency(0.4))
    with pytest.raises(PrinterError) as info:
        http.request("GET", simulator.url("sandbox") + "/pieces", timeout=0.1)
    assert info.value.permanent is False
    assert "timed out" in info.value.message


def test_it_uses_the_configured_timeout_by_default(simulator, settings):
    settings.PRINTER_TIMEOUT_S = 0.1
    simulator.inject("sandbox", Fault.latency(0.4))
    with pytest.raises(PrinterError, match=r"timed out after 0\.1s"):
        http.request("GET", simulator.url("sandbox") + "/pieces")


@pytest.mark.parametrize("value", ["inf", "nan", "-inf"])
def test_it_ignores_a_non_finite_retry_header_and_reads_the_next_one(value):
    assert http.retry_after_seconds({"Retry-After": value, "ratelimit-reset": "7"}, now=0) == 7.0
    assert http.retry_after_seconds({"Retry-After": value}, now=0) is None
