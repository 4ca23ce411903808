"""The one outbound HTTP seam: one error type, pooled clients, bounded Retry-After, Faraday through it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from campaigns.enrichment.base import EnrichmentError, EnrichmentQuery
from campaigns.enrichment.faraday import FaradayClient
from common import http as outbound
from common.http import MAX_RETRY_AFTER_S, OutboundError
from printers.base import PrinterError
from printers.simulator import Simulator, VendorHandler

NOW = 1_000_000_000.0  # 2001-09-09 01:46:40 UTC


class FaradayHandler(VendorHandler):
    """Faraday's Lookup API shape: every lookup matches one full address."""

    name = "faraday"

    def handle(self, method, path, query, headers, body):
        answer = {"match_type": "email_full_name", "house_number_and_street": "742 Evergreen Terrace"}
        return self.json_response(200, {**answer, "city": "Springfield", "state": "IL", "postcode": "62704"})


@pytest.fixture
def faraday_sim() -> Iterator[Simulator]:
    sim = Simulator(handlers={"faraday": FaradayHandler}).start()
    try:
        yield sim
    finally:
        sim.stop()


def faraday(base_url: str, api_key: str = "fdy-key") -> FaradayClient:
    return FaradayClient(api_key=api_key, base_url=base_url, target_id="tgt-1", timeout=2)


QUERY = EnrichmentQuery(first_name="Homer", last_name="S", email="homer@example.com")


# ---------------------------------------------------------------- one error type
def test_printer_errors_are_outbound_errors_with_the_same_flag():
    error = PrinterError("lob answered HTTP 503", permanent=False, status_code=503, retry_after=4.0)
    assert isinstance(error, OutboundError)
    assert (error.permanent, error.status_code, error.retry_after) == (False, 503, 4.0)


# ---------------------------------------------------------------- pooled clients
def test_two_calls_build_one_client_and_reuse_its_connection(faraday_sim: Simulator, monkeypatch: Any) -> None:
    built: list[httpx.Client] = []
    real_client = httpx.Client

    def counting_client(**kwargs: Any) -> httpx.Client:
        built.append(real_client(**kwargs))
        return built[-1]

    monkeypatch.setattr(outbound.httpx, "Client", counting_client)
    client = faraday(faraday_sim.url("faraday"))
    assert client.lookup(QUERY).address is not None
    assert client.lookup(QUERY).address is not None
    assert len(built) == 1
    assert len({r.client_port for r in faraday_sim.captured("faraday")}) == 1


def test_each_origin_gets_its_own_client_and_threads_share_it() -> None:
    seen: list[httpx.Client] = []
    threads = [
        threading.Thread(target=lambda: seen.append(outbound.client_for("http://127.0.0.1:9/a"))) for _ in range(16)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(c) for c in seen}) == 1
    assert outbound.client_for("http://127.0.0.1:9/b") is seen[0]
    other = outbound.client_for("http://127.0.0.1:10/a")
    assert other is not seen[0]
    outbound.close_clients("http://127.0.0.1:10")
    assert other.is_closed
    outbound.close_clients("http://127.0.0.1:9")
    assert seen[0].is_closed
    assert outbound.client_for("http://127.0.0.1:9/a") is not seen[0]


# ---------------------------------------------------------------- Retry-After has a ceiling
@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "30"}, 30.0),
        ({"Retry-After": "86400"}, MAX_RETRY_AFTER_S),  # seconds
        ({"Retry-After": "Fri, 01 Jan 2037 00:00:00 GMT"}, MAX_RETRY_AFTER_S),  # an HTTP date 35 years ahead
        ({"Retry-After": "Sun, 09 Sep 2001 02:46:40 GMT"}, MAX_RETRY_AFTER_S),  # exactly one hour ahead
        ({"X-Rate-Limit-Reset": "2114380800"}, MAX_RETRY_AFTER_S),  # epoch seconds in 2037
        ({"X-Rate-Limit-Reset": str(int(NOW) + 50)}, 50.0),
        ({"Retry-After": "Sat, 01 Jan 2000 00:00:00 GMT"}, 0.0),  # in the past: retry now
    ],
)
def test_retry_after_is_clamped_to_the_documented_maximum(headers: dict[str, str], expected: float) -> None:
    assert outbound.retry_after_seconds(headers, now=NOW) == expected


def test_a_429_carries_the_clamped_wait() -> None:
    response = httpx.Response(429, headers={"Retry-After": "Fri, 01 Jan 2037 00:00:00 GMT"})
    with pytest.raises(OutboundError) as info:
        outbound.raise_for_status(response, service="Pixelixe")
    assert info.value.retry_after == MAX_RETRY_AFTER_S == 3600.0
    assert info.value.permanent is False


# ---------------------------------------------------------------- Faraday through the seam
def test_faraday_with_a_non_ascii_api_key_stops_the_run_instead_of_crashing(faraday_sim: Simulator) -> None:
    with pytest.raises(EnrichmentError, match="API key holds a character that is not plain ASCII") as info:
        faraday(faraday_sim.url("faraday"), api_key="fdy-kéy").lookup(QUERY)
    assert info.value.fatal is True
    assert faraday_sim.captured("faraday") == []


@pytest.mark.parametrize("base_url", ["", "faraday.example/v1", "ftp://api.faraday.ai/v1"])
def test_faraday_without_a_usable_base_url_is_a_fatal_configuration_error(base_url: str) -> None:
    with pytest.raises(EnrichmentError, match="misconfigured") as info:
        faraday(base_url).lookup(QUERY)
    assert info.value.fatal is True


def test_faraday_unreachable_stays_transient() -> None:
    with pytest.raises(EnrichmentError, match="unreachable") as info:
        faraday("http://127.0.0.1:9/v1").lookup(QUERY)
    assert info.value.fatal is False


def test_a_forked_worker_opens_its_own_client_and_leaves_the_parents_open(monkeypatch: Any) -> None:
    parent = outbound.client_for("http://127.0.0.1:9/a")
    monkeypatch.setattr(outbound, "_clients_pid", -1)  # as if this process were a fork of another
    child = outbound.client_for("http://127.0.0.1:9/a")
    assert child is not parent
    assert not parent.is_closed  # its sockets belong to the parent process
    outbound.close_clients("http://127.0.0.1:9")
    parent.close()


def test_a_client_already_made_is_handed_out_without_the_lock(monkeypatch: Any) -> None:
    """Every printer call asks for its client, from many threads at once: only
    making one takes the lock (a lock held across an interpreter switch made
    the calls queue)."""
    first = outbound.client_for("http://127.0.0.1:9/a")

    class NoLock:
        def __enter__(self) -> None:
            raise AssertionError("the lock was taken for a client that exists")

        def __exit__(self, *exc: object) -> None:
            pass

    with monkeypatch.context() as patched:
        patched.setattr(outbound, "_clients_lock", NoLock())
        assert outbound.client_for("http://127.0.0.1:9/b") is first
    outbound.close_clients("http://127.0.0.1:9")


# ---------------------------------------------------------------- a hook right before each request
def test_a_hook_runs_right_before_each_request_to_its_origin_and_can_stop_it() -> None:
    events: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        events.append(f"sent {request.url.host}{request.url.path}")
        return httpx.Response(200, json={})

    url, other = "http://gate.invalid", "http://elsewhere.invalid"
    outbound.mount_transport(url, httpx.MockTransport(handler))
    outbound.mount_transport(other, httpx.MockTransport(handler))
    try:
        with outbound.before_each_request(lambda: events.append("hook"), to=f"{url}/v1"):
            outbound.request("POST", f"{url}/a", timeout=1, json={"x": 1})
            outbound.request("GET", f"{url}/b", timeout=1)
            outbound.request("GET", f"{other}/x", timeout=1)  # another origin: not the hook's
        outbound.request("GET", f"{url}/c", timeout=1)  # outside the block: no hook
        assert events == [
            "hook",
            "sent gate.invalid/a",
            "hook",
            "sent gate.invalid/b",
            "sent elsewhere.invalid/x",
            "sent gate.invalid/c",
        ]

        def refuse() -> None:
            raise OutboundError("no permit")

        with outbound.before_each_request(refuse, to=url), pytest.raises(OutboundError, match="no permit"):
            outbound.request("GET", f"{url}/d", timeout=1)
        assert "sent gate.invalid/d" not in events
    finally:
        outbound.unmount_transport(url)
        outbound.unmount_transport(other)


def test_hooks_are_per_thread_and_nested_blocks_restore_the_outer_one() -> None:
    events: list[str] = []
    url = "http://gate-threads.invalid"
    outbound.mount_transport(url, httpx.MockTransport(lambda request: httpx.Response(204)))
    try:
        with outbound.before_each_request(lambda: events.append("outer"), to=url):
            with outbound.before_each_request(lambda: events.append("inner"), to=url):
                outbound.request("GET", url, timeout=1)
            outbound.request("GET", url, timeout=1)
            other = threading.Thread(target=lambda: outbound.request("GET", url, timeout=1))
            other.start()
            other.join()
        assert events == ["inner", "outer"]
    finally:
        outbound.unmount_transport(url)
