from __future__ import annotations

import json
import time
from typing import Any

import pytest

from mailpieces.status import MailpieceStatus as S
from printers import testing
from printers.base import Address, PrinterError, SubmitRequest, WebhookRequest, WebhookVerificationError
from printers.sandbox.client import SandboxPrinter, sign
from printers.simulator import Fault
from printers.testing import configured, fixtures_dir

FIXTURES = fixtures_dir("sandbox")
SANDBOX_TO = Address(name="Ann Lee", address1="185 Berry St", city="San Francisco", state="CA", zip="94107")
SECRET = "test-sandbox-secret"
BODY = (FIXTURES / "piece_status_changed.json").read_bytes()


def make_request(**changes: Any) -> SubmitRequest:
    return testing.make_request(**{"to": SANDBOX_TO, "metadata": {"recipient_id": "4242"}, **changes})


@pytest.fixture
def sandbox(simulator) -> SandboxPrinter:
    return configured(SandboxPrinter)


# ---------------------------------------------------------------- client against the simulator
def test_it_creates_a_piece_with_our_wire_format(sandbox, simulator):
    submission = sandbox.submit(make_request())
    assert submission.printer_id.startswith("sbx_")
    [sent] = simulator.captured("sandbox", "POST")
    assert sent.path == "/v1/pieces"
    assert sent.headers["idempotency-key"] == "pc:7:4242:0:key"
    body = json.loads(sent.body)
    assert body["reference"] == "pc:7:4242:0"
    assert body["to"]["zip"] == "94107"
    assert body["metadata"] == {"recipient_id": "4242"}


def test_it_replays_the_same_key_to_the_same_piece(sandbox, simulator):
    assert sandbox.submit(make_request()).printer_id == sandbox.submit(make_request()).printer_id
    assert simulator.physical_pieces("sandbox", "pc:7:4242:0:key") == 1


def test_a_timeout_after_create_is_transient_and_the_replay_makes_no_second_piece(sandbox, simulator):
    simulator.inject("sandbox", "timeout_after_create")
    with pytest.raises(PrinterError) as info:
        sandbox.submit(make_request())
    assert info.value.permanent is False
    sandbox.submit(make_request())
    assert simulator.physical_pieces("sandbox") == 1


def test_it_reports_a_rejected_address_as_permanent(sandbox):
    with pytest.raises(PrinterError) as info:
        sandbox.submit(make_request(to=Address(name="X", address1="1 Reject Rd", zip="1")))
    assert (info.value.permanent, info.value.code) == (True, "address_rejected")


@pytest.mark.parametrize("status", [429, 500, 503])
def test_it_reports_429_and_5xx_as_transient(sandbox, simulator, status):
    simulator.inject("sandbox", status)
    with pytest.raises(PrinterError) as info:
        sandbox.submit(make_request())
    assert info.value.permanent is False


def test_it_finds_a_piece_by_reference_even_after_the_key_expired(sandbox, simulator):
    created = sandbox.submit(make_request())
    simulator.advance(25 * 3600)
    found = sandbox.lookup("pc:7:4242:0")
    assert found is not None
    assert found.printer_id == created.printer_id
    assert sandbox.lookup("pc:7:1:0") is None


def test_it_cancels_a_received_piece_but_not_one_in_production(sandbox, simulator):
    first = sandbox.submit(make_request())
    sandbox.cancel(first.printer_id)
    assert simulator.piece("sandbox", first.printer_id).status == "Cancelled"
    second = sandbox.submit(make_request(idempotency_key="k2", reference="pc:7:4242:1"))
    simulator.update("sandbox", second.printer_id, status="Producing")
    with pytest.raises(PrinterError) as info:
        sandbox.cancel(second.printer_id)
    assert (info.value.permanent, info.value.status_code) == (True, 409)


def test_the_simulator_fires_webhooks_the_sandbox_accepts(sandbox, simulator):
    piece = sandbox.submit(make_request())
    steps = simulator.timeline("sandbox", piece.printer_id, duplicates=[2], order=[0, 2, 1, 3, 4, 5], missing=[4])
    deliveries = simulator.fire_webhooks("unused", steps, send=lambda *a: (200, ""))
    events = []
    for delivery in deliveries:
        sandbox.verify_webhook(WebhookRequest(delivery.body, delivery.headers))
        events.extend(sandbox.parse_webhook(delivery.body))
    assert [e.status for e in events] == [
        S.RECEIVED,
        S.HANDED_OVER,
        S.HANDED_OVER,
        S.PRODUCING,
        S.IN_TRANSIT,
        S.DELIVERED,
    ]
    assert events[1].event_id == events[2].event_id  # a duplicate is the same event
    assert len({e.event_id for e in events}) == 5
    assert all(e.reference == "pc:7:4242:0" for e in events)
    # Out of order on arrival, yet the event times keep the true order.
    assert events[3].occurred_at < events[1].occurred_at


# ---------------------------------------------------------------- parsing
def test_it_parses_a_status_event():
    [event] = SandboxPrinter({}).parse_webhook(BODY)
    assert (event.printer_id, event.reference, event.vendor_status) == (
        "sbx_00000042a1b2c3",
        "pc:7:4242:0",
        "InTransit",
    )
    assert event.status == S.IN_TRANSIT
    assert event.event_id == "evt_000000420c0ffee1"
    assert event.occurred_at.isoformat() == "2026-03-04T11:58:00+00:00"


@pytest.mark.parametrize("status", [s.value for s in S])
def test_it_maps_every_status_of_ours_to_itself(status):
    assert SandboxPrinter.convert_status(status) == status


@pytest.mark.parametrize("status", ["delivered", "Shipped", ""])
def test_it_maps_anything_else_to_unknown(status):
    assert SandboxPrinter.convert_status(status) == S.UNKNOWN


@pytest.mark.parametrize(
    "raw",
    [
        (FIXTURES / "malformed_no_data.json").read_bytes(),
        b"nope",
        b"[]",
        b'{"id": "", "type": "x", "data": {"id": "a"}}',
    ],
)
def test_it_raises_a_clear_value_error_on_a_malformed_body(raw):
    with pytest.raises(ValueError, match="sandbox webhook body"):
        SandboxPrinter({}).parse_webhook(raw)


# ---------------------------------------------------------------- signature matrix
def verifier(secret: str = SECRET) -> SandboxPrinter:
    return SandboxPrinter({"webhook_secret": secret})


def headers(value: str) -> dict[str, str]:
    return {"X-Postcards-Signature": value}


def test_it_accepts_a_valid_signature():
    verifier().verify_webhook(WebhookRequest(BODY, headers(sign(SECRET, int(time.time()), BODY))))


def test_it_accepts_any_matching_v1_during_a_secret_rotation():
    now = int(time.time())
    old = sign("old-secret", now, BODY).split(",")[1]
    verifier().verify_webhook(WebhookRequest(BODY, headers(f"{sign(SECRET, now, BODY)},{old}")))
    verifier().verify_webhook(WebhookRequest(BODY, headers(f"t={now},{old},{sign(SECRET, now, BODY).split(',')[1]}")))


NOW = int(time.time())


@pytest.mark.parametrize(
    ("body", "hdrs", "secret"),
    [
        pytest.param(BODY.replace(b"InTransit", b"Delivered"), headers(sign(SECRET, NOW, BODY)), SECRET, id="tampered"),
        pytest.param(BODY, headers(sign("wrong", NOW, BODY)), SECRET, id="wrong-secret"),
        pytest.param(BODY, {}, SECRET, id="missing-header"),
        pytest.param(BODY, headers("garbage"), SECRET, id="malformed-header"),
        pytest.param(BODY, headers(f"t={NOW}"), SECRET, id="no-v1"),
        pytest.param(BODY, headers(f"t={NOW},t={NOW},{sign(SECRET, NOW, BODY).split(',')[1]}"), SECRET, id="two-t"),
        pytest.param(BODY, headers(sign(SECRET, NOW, BODY).replace(f"t={NOW}", "t=soon")), SECRET, id="bad-t"),
        pytest.param(BODY, headers(sign(SECRET, NOW - 86400, BODY)), SECRET, id="stale"),
        pytest.param(BODY, headers(sign(SECRET, NOW + 86400, BODY)), SECRET, id="future"),
        pytest.param(
            json.dumps(json.loads(BODY)).encode(), headers(sign(SECRET, NOW, BODY)), SECRET, id="re-serialized"
        ),
        pytest.param(BODY, headers(sign(SECRET, NOW, BODY)), "", id="missing-secret"),
    ],
)
def test_it_rejects_every_inauthentic_webhook_with_a_verification_error_only(body, hdrs, secret):
    with pytest.raises(WebhookVerificationError):
        verifier(secret).verify_webhook(WebhookRequest(body, hdrs))


def test_a_missing_secret_is_reported_in_plain_words():
    with pytest.raises(WebhookVerificationError) as refused:
        verifier("").verify_webhook(WebhookRequest(BODY, headers(sign(SECRET, NOW, BODY))))
    assert str(refused.value) == "no sandbox webhook secret is configured: refusing every webhook"


def test_latency_below_the_timeout_still_succeeds(sandbox, simulator):
    simulator.inject("sandbox", Fault.latency(0.05))
    assert sandbox.submit(make_request()).printer_id
