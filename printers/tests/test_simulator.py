from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import StringIO
from unittest import mock

import httpx
import pytest
from django.core.management import call_command

from printers.simulator import Fault, Piece, Simulator, VendorHandler


class EchoHandler(VendorHandler):
    """A minimal vendor: POST creates a piece under X-Key, GET /boom raises."""

    name = "echo"
    lifecycle = ("one", "two", "three")

    def handle(self, method, path, query, headers, body):
        if path == "/boom":
            raise RuntimeError("handler bug")
        piece, replay = self.store.create_or_replay(
            self.name,
            key=headers.get("x-key"),
            build=lambda: Piece(vendor=self.name, id=self.store.new_id("e_"), reference=body.decode()),
        )
        return self.json_response(200, {"id": piece.id, "replay": replay})

    def webhook(self, piece, event):
        body = {"id": event.id, "piece": piece.id, "status": event.status}
        return json.dumps(body).encode(), {"X-Sig": self.secret}


@pytest.fixture
def sim() -> Iterator[Simulator]:
    clock = [1_000_000.0]
    simulator = Simulator(secrets={"echo": "s3cret"}, clock=lambda: clock[0], handlers={"echo": EchoHandler}).start()
    try:
        yield simulator
    finally:
        simulator.stop()


def post(sim: Simulator, key: str = "k1", body: str = "ref-1") -> httpx.Response:
    return httpx.post(f"{sim.base_url}/echo/v1/pieces", content=body, headers={"X-Key": key}, timeout=2)


def test_it_routes_by_vendor_prefix_and_answers_404_for_unknown_vendors(sim):
    assert post(sim).status_code == 200
    assert httpx.get(f"{sim.base_url}/nobody/v1/x", timeout=2).status_code == 404


def test_a_handler_bug_is_a_500_not_a_hang(sim):
    response = httpx.get(f"{sim.base_url}/echo/boom", timeout=2)
    assert response.status_code == 500
    assert "handler bug" in response.text


def test_it_replays_a_live_key_and_creates_again_after_expiry(sim):
    first = post(sim).json()
    assert post(sim).json() == {"id": first["id"], "replay": True}
    sim.advance(24 * 3600 - 1)
    assert post(sim).json()["id"] == first["id"]
    sim.advance(2)
    assert post(sim).json()["id"] != first["id"]
    assert sim.physical_pieces("echo", "k1") == 2


def test_it_counts_physical_pieces_per_key_per_reference_and_in_total(sim):
    post(sim, "k1", "ref-1")
    post(sim, "k2", "ref-2")
    post(sim, "k2", "ref-2")
    assert sim.physical_pieces("echo", "k2") == 1
    assert sim.physical_pieces("echo", "ref-1") == 1
    assert sim.physical_pieces("echo") == 2
    assert sim.total_physical_pieces() == 2


def test_concurrent_requests_with_one_key_create_one_piece(sim: Simulator) -> None:
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(post(sim).json()["id"])) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 12
    assert len(set(results)) == 1
    assert sim.physical_pieces("echo") == 1


def test_it_answers_an_injected_429_with_rate_limit_headers_in_both_spellings(sim):
    sim.inject("echo", 429)
    response = post(sim)
    assert response.status_code == 429
    for name in ("Retry-After", "X-Rate-Limit-Reset", "ratelimit-reset", "ratelimit-remaining"):
        assert response.headers.get(name)
    assert response.json()["error"]["code"] == "rate_limit_exceeded"
    assert sim.physical_pieces("echo") == 0
    assert post(sim).status_code == 200  # the fault was used up


def test_faults_respect_times_method_and_path(sim):
    sim.inject("echo", Fault.status(503, times=2, method="POST", path_contains="/pieces"))
    assert httpx.get(f"{sim.base_url}/echo/v1/pieces", timeout=2).status_code == 200  # GET: not matched
    assert [post(sim).status_code for _ in range(3)] == [503, 503, 200]


def test_inject_accepts_shorthands_and_refuses_booleans(sim):
    assert sim.inject("echo", 500).kind == "status"
    assert sim.inject("echo", 0.01).kind == "latency"
    assert sim.inject("echo", "drop_after_create").kind == "drop_after_create"
    with pytest.raises(TypeError):
        sim.inject("echo", True)


def test_timeout_after_create_creates_the_piece_and_never_answers(sim):
    sim.inject("echo", Fault.timeout_after_create(hang_s=1.0))
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{sim.base_url}/echo/v1/pieces", content="r", headers={"X-Key": "k9"}, timeout=0.2)
    assert sim.physical_pieces("echo", "k9") == 1


def test_it_captures_requests_for_contract_checks(sim):
    post(sim, "k1", "hello")
    [captured] = sim.captured("echo", "POST")
    assert (captured.path, captured.body, captured.headers["x-key"]) == ("/v1/pieces", b"hello", "k1")


def test_timelines_order_duplicate_and_drop_steps_with_true_event_times(sim):
    piece_id = post(sim).json()["id"]
    steps = sim.timeline("echo", piece_id, duplicates=[0], order=[2, 0, 1], missing=[1], spacing_s=10)
    assert [(s.status, s.repeat) for s in steps] == [("three", 1), ("one", 2)]
    assert steps[0].at == 1_000_030.0
    assert steps[1].at == 1_000_010.0
    with pytest.raises(KeyError, match="does not exist"):
        sim.timeline("echo", "e_missing")


class Receiver(BaseHTTPRequestHandler):
    received: list[tuple[str, bytes, str]] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Receiver.received.append((self.path, body, self.headers["X-Sig"]))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_it_posts_signed_webhooks_over_http_in_timeline_order(sim):
    Receiver.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    try:
        piece_id = post(sim).json()["id"]
        url = f"http://127.0.0.1:{server.server_address[1]}"
        deliveries = sim.fire_webhooks(
            lambda vendor: f"{url}/webhooks/{vendor}/", sim.timeline("echo", piece_id, duplicates=[1])
        )
    finally:
        server.shutdown()
        server.server_close()
    assert [d.status_code for d in deliveries] == [204, 204, 204, 204]
    bodies = [json.loads(body) for _, body, _ in Receiver.received]
    assert [b["status"] for b in bodies] == ["one", "two", "two", "three"]
    assert bodies[1]["id"] == bodies[2]["id"]
    assert {path for path, _, _ in Receiver.received} == {"/webhooks/echo/"}
    assert {sig for _, _, sig in Receiver.received} == {"s3cret"}
    assert sim.piece("echo", piece_id).status == "three"


def test_a_failed_delivery_is_reported_not_raised(sim):
    piece_id = post(sim).json()["id"]
    [delivery] = sim.fire_webhooks("http://127.0.0.1:9/closed", sim.timeline("echo", piece_id, ["one"]))
    assert delivery.status_code == 0
    assert delivery.response_text


def test_the_management_command_serves_until_interrupted(settings):
    out = StringIO()
    with mock.patch.object(Simulator, "serve_forever", side_effect=KeyboardInterrupt):
        call_command(
            "printer_simulator",
            "--port",
            "0",
            "--latency",
            "0.01",
            "--webhook-target",
            "http://127.0.0.1:9",
            stdout=out,
        )
    assert "printer simulator on http://127.0.0.1:" in out.getvalue()
    assert "stopped" in out.getvalue()


def test_the_command_says_a_taken_port_or_a_bad_number_in_words() -> None:
    """A port in use raised OSError, --port 70000 OverflowError, a negative
    --webhook-interval crashed the webhook thread later: each is a CommandError."""
    from django.core.management import CommandError

    with Simulator() as busy:
        port = busy.base_url.rsplit(":", 1)[1]
        with pytest.raises(CommandError, match=rf"cannot listen on 127.0.0.1:{port}: .*choose another --port"):
            call_command("printer_simulator", "--port", port, stdout=StringIO())
    with pytest.raises(CommandError, match="--port 70000 is not a port"):
        call_command("printer_simulator", "--port", "70000", stdout=StringIO())
    with pytest.raises(CommandError, match="--webhook-interval must be 0 or more seconds"):
        call_command("printer_simulator", "--port", "0", "--webhook-interval", "-1", stdout=StringIO())
