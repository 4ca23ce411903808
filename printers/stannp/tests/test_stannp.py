from __future__ import annotations

import contextlib
import datetime as dt
import json
from functools import partial
from typing import Any
from urllib.parse import parse_qs, urlencode

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailpieces.status import MailpieceStatus as S
from printers.base import PrinterError, SubmitRequest, WebhookRequest, WebhookVerificationError
from printers.registry import get_printer, printer_conf
from printers.signing import hmac_sha256_hex
from printers.simulator import Fault, Simulator
from printers.stannp.client import StannpPrinter
from printers.stannp.status import STATUS_MAP
from printers.stannp.webhooks import form_to_nested
from printers.testing import (
    UK_ADDRESS,
    assert_a_lost_create_replays_to_its_piece,
    assert_lookup_finds,
    make_request,
    read_fixture,
)
from printers.testing import offline as offline_printer

FORM = "application/x-www-form-urlencoded"
fixture = partial(read_fixture, "stannp")
offline = partial(offline_printer, StannpPrinter)

# Our states were modelled on Stannp: every native name maps 1:1; both vocabularies.
STATUS_ROWS = [
    ("received", S.RECEIVED),
    ("producing", S.PRODUCING),
    ("printing", S.PRODUCING),
    ("handed_over", S.HANDED_OVER),
    ("dispatched", S.HANDED_OVER),
    ("in_transit", S.IN_TRANSIT),
    ("local_delivery", S.LOCAL_DELIVERY),
    ("delivered", S.DELIVERED),
    ("returned", S.RETURNED),
    ("cancelled", S.CANCELLED),
    ("test", S.TEST),
    ("lost_in_space", S.UNKNOWN),
    ("", S.UNKNOWN),
    ("Delivered", S.UNKNOWN),
]


def secret() -> str:
    return str(printer_conf("stannp")["webhook_secret"])


def signed(body: bytes, header: str = "X-Stannp-Signature", key: str | None = None) -> WebhookRequest:
    return WebhookRequest(body=body, headers={header: hmac_sha256_hex(key or secret(), body)})


def submit_request(reference: str = "pc:7:1042:0", **changes: Any) -> SubmitRequest:
    return make_request(
        reference,
        **{"to": UK_ADDRESS, "size": "A6", "metadata": {"recipient_id": "1042", "campaign_id": "88"}, **changes},
    )


# ---------------------------------------------------------------------- status map
@pytest.mark.parametrize(("vendor", "ours"), STATUS_ROWS)
def test_it_converts_each_stannp_status(vendor: str, ours: S) -> None:
    assert StannpPrinter.convert_status(vendor) == ours


def test_it_covers_every_row_of_the_status_map_in_the_table() -> None:
    assert set(STATUS_MAP) <= {vendor for vendor, _ in STATUS_ROWS}


# ---------------------------------------------------------------------- fixtures
def test_it_parses_a_delivered_mailpiece_status() -> None:
    (event,) = offline().parse_webhook(fixture("mailpiece_status_delivered"))
    assert event.printer_id == "52000417"
    assert event.status == S.DELIVERED
    assert event.vendor_status == "delivered"
    assert event.event_id == "52000417:delivered"
    assert event.reference == "pc:7:1042:0"
    assert event.occurred_at == dt.datetime(2026, 3, 4, 16, 20, tzinfo=dt.UTC)


def test_it_parses_a_returned_mailpiece_status() -> None:
    (event,) = offline().parse_webhook(fixture("mailpiece_status_returned"))
    assert (event.printer_id, event.status, event.event_id) == ("52000417", S.RETURNED, "52000417:returned")


def test_it_turns_a_batch_delivery_into_one_event_per_piece_with_drifting_types() -> None:
    events = offline().parse_webhook(fixture("mailpiece_status_batch"))
    assert [(e.printer_id, e.status) for e in events] == [
        ("52000418", S.HANDED_OVER),
        ("52000419", S.PRODUCING),
        ("52000420", S.LOCAL_DELIVERY),
        ("52000421", S.UNKNOWN),
    ]
    assert [e.reference for e in events] == ["pc:7:1043:0", "pc:7:1044:1", "", ""]
    assert len({e.event_id for e in events}) == 4
    assert events[3].vendor_status == "lost_in_space"


def test_it_parses_the_test_url_validation_call_to_no_events() -> None:
    body = fixture("test_url")
    offline().verify_webhook(signed(body))
    assert offline().parse_webhook(body) == []


def test_it_ignores_campaign_status_events() -> None:
    assert offline().parse_webhook(fixture("campaign_status")) == []


def test_it_rejects_a_malformed_payload_with_a_clear_error() -> None:
    with pytest.raises(ValueError, match="not a Stannp envelope"):
        offline().parse_webhook(fixture("malformed"))


@pytest.mark.parametrize("raw", [b"not json", b"\xff\xfe", b"[]", b'{"event": 5}', b'{"event": "x", "mailpieces": 3}'])
def test_it_raises_value_error_for_garbage(raw: bytes) -> None:
    with pytest.raises(ValueError, match="stannp"):
        offline().parse_webhook(raw)


def test_it_parses_a_form_encoded_delivery_like_its_json_twin() -> None:
    data = json.loads(fixture("mailpiece_status_batch"))
    fields = {k: v for k, v in data.items() if k != "mailpieces"}
    for i, piece in enumerate(data["mailpieces"]):
        fields.update({f"mailpieces[{i}][{k}]": v for k, v in piece.items()})
    events = offline().parse_webhook(urlencode(fields).encode(), content_type=f"{FORM}; charset=utf-8")
    twins = offline().parse_webhook(fixture("mailpiece_status_batch"))
    assert [(e.printer_id, e.status, e.event_id) for e in events] == [
        (e.printer_id, e.status, e.event_id) for e in twins
    ]


def test_it_reads_a_zoneless_or_zero_created_as_utc_or_none() -> None:
    (event,) = offline().parse_webhook(
        b'{"event": "mailpiece_status", "created": "0000-00-00 00:00:00", "mailpieces": [{"id": 1, "status": "test"}]}'
    )
    assert event.occurred_at is None
    assert event.status == S.TEST


def test_it_refuses_form_fields_that_clash() -> None:
    with pytest.raises(ValueError, match="clashes"):
        form_to_nested("mailpieces=1&mailpieces[0][id]=2")


# ---------------------------------------------------------------------- signatures
@pytest.mark.parametrize("header", ["X-Stannp-Signature", "X-Stannp-Sigature", "x-stannp-signature"])
def test_it_accepts_a_valid_signature_under_either_spelling(header: str) -> None:
    offline().verify_webhook(signed(fixture("mailpiece_status_delivered"), header=header))


def test_it_accepts_an_uppercase_hex_signature() -> None:
    body = fixture("mailpiece_status_delivered")
    offline().verify_webhook(WebhookRequest(body, {"X-Stannp-Signature": hmac_sha256_hex(secret(), body).upper()}))


def test_it_rejects_a_tampered_body() -> None:
    request = signed(fixture("mailpiece_status_delivered"))
    tampered = WebhookRequest(request.body.replace(b"delivered", b"returned"), request.headers)
    with pytest.raises(WebhookVerificationError):
        offline().verify_webhook(tampered)


def test_it_rejects_a_signature_made_with_another_secret() -> None:
    with pytest.raises(WebhookVerificationError):
        offline().verify_webhook(signed(fixture("mailpiece_status_delivered"), key="someone-else"))


def test_it_rejects_a_missing_signature_header() -> None:
    with pytest.raises(WebhookVerificationError, match="missing"):
        offline().verify_webhook(WebhookRequest(fixture("test_url"), {"Content-Type": "application/json"}))


@pytest.mark.parametrize("value", ["sha256=abc", "zz" * 32, "é", " ", "v1,abc", "0" * 64])
def test_it_rejects_a_malformed_signature_header(value: str) -> None:
    with pytest.raises(WebhookVerificationError):
        offline().verify_webhook(WebhookRequest(fixture("test_url"), {"X-Stannp-Signature": value}))


def test_it_rejects_re_serialized_json() -> None:
    raw = fixture("mailpiece_status_delivered")
    request = signed(raw)
    reserialized = json.dumps(json.loads(raw)).encode()
    assert reserialized != raw
    with pytest.raises(WebhookVerificationError):
        offline().verify_webhook(WebhookRequest(reserialized, request.headers))


def test_it_rejects_every_webhook_when_no_secret_is_configured() -> None:
    body = fixture("test_url")
    with pytest.raises(WebhookVerificationError, match="secret"):
        offline(webhook_secret="").verify_webhook(
            WebhookRequest(body, {"X-Stannp-Signature": hmac_sha256_hex("x", body)})
        )


@given(body=st.binary(max_size=64), header=st.text(max_size=80))
def test_it_never_raises_anything_but_a_verification_error(body: bytes, header: str) -> None:
    printer = StannpPrinter({"webhook_secret": "test-stannp-secret"})
    with contextlib.suppress(WebhookVerificationError):
        printer.verify_webhook(WebhookRequest(body, {"X-Stannp-Signature": header}))


# ---------------------------------------------------------------------- client against the simulator
def test_it_submits_a_form_encoded_postcard_with_basic_auth_and_the_key(simulator: Simulator) -> None:
    submission = get_printer("stannp").submit(submit_request())
    assert submission.printer_id.isdigit()
    assert submission.reference == "pc:7:1042:0"
    (sent,) = simulator.captured("stannp", "POST")
    assert sent.path == "/v1/postcards/create"
    assert sent.headers["authorization"].startswith("Basic ")
    assert sent.headers["x-idempotency-key"] == "pc:7:1042:0:key"
    form = {k: v[0] for k, v in parse_qs(sent.body.decode()).items()}
    assert form["tags"] == "pc:7:1042:0,campaign_id=88,recipient_id=1042"
    assert (form["recipient[firstname]"], form["recipient[lastname]"]) == ("Ada", "Lovelace")
    assert form["recipient[postcode]"] == "EH1 1YZ"
    assert form["test"] == "0"
    assert simulator.physical_pieces("stannp") == 1


def test_it_treats_a_409_replay_as_success_and_returns_the_original_piece(simulator: Simulator) -> None:
    printer = get_printer("stannp")
    first = printer.submit(submit_request())
    again = printer.submit(submit_request())
    assert again.printer_id == first.printer_id
    assert simulator.physical_pieces("stannp", "pc:7:1042:0:key") == 1


def test_it_recovers_from_a_timeout_after_the_piece_was_created(simulator: Simulator) -> None:
    assert_a_lost_create_replays_to_its_piece(simulator, get_printer("stannp"), submit_request())


def test_a_refused_key_format_is_not_read_as_a_reused_key(simulator: Simulator) -> None:
    with pytest.raises(PrinterError, match="10 to 1024") as refused:
        get_printer("stannp").submit(submit_request(idempotency_key="short"))
    assert refused.value.permanent is True
    assert simulator.captured("stannp", "GET") == []  # no lookup: the key never made anything


def test_it_finds_a_piece_by_reference_after_the_key_expired(simulator: Simulator) -> None:
    printer = get_printer("stannp")
    created = printer.submit(submit_request())
    printer.submit(submit_request("pc:7:10420:0"))  # a reference that contains the first one
    simulator.advance(25 * 3600)
    assert_lookup_finds(printer, "pc:7:1042:0", created.printer_id)


def test_it_cancels_a_piece_before_production(simulator: Simulator) -> None:
    printer = get_printer("stannp")
    created = printer.submit(submit_request())
    printer.cancel(created.printer_id)
    piece = simulator.piece("stannp", created.printer_id)
    assert piece is not None
    assert piece.cancelled is True
    assert simulator.physical_pieces("stannp") == 0


def test_it_reports_a_late_cancel_as_a_permanent_error(simulator: Simulator) -> None:
    printer = get_printer("stannp")
    created = printer.submit(submit_request())
    simulator.update("stannp", created.printer_id, status="producing")
    with pytest.raises(PrinterError) as refused:
        printer.cancel(created.printer_id)
    assert refused.value.permanent is True


@pytest.mark.parametrize(("code", "permanent"), [(429, False), (503, False), (401, True), (400, True)])
def test_it_classifies_vendor_errors(simulator: Simulator, code: int, permanent: bool) -> None:
    simulator.inject("stannp", code)
    with pytest.raises(PrinterError) as failed:
        get_printer("stannp").submit(submit_request())
    assert failed.value.permanent is permanent
    assert failed.value.status_code == code
    if code == 429:
        assert failed.value.retry_after is not None


def test_it_sends_test_pieces_that_never_print(simulator: Simulator) -> None:
    get_printer("stannp").submit(submit_request(test=True))
    assert simulator.pieces("stannp")[0].status == "test"
    assert simulator.physical_pieces("stannp") == 0


def test_it_refuses_an_unknown_size_before_calling_stannp(simulator: Simulator) -> None:
    with pytest.raises(PrinterError, match="size") as refused:
        get_printer("stannp").submit(submit_request(size="A4"))
    assert refused.value.permanent is True
    assert simulator.captured("stannp") == []


def test_it_verifies_and_parses_the_simulators_signed_webhooks(simulator: Simulator) -> None:
    printer = get_printer("stannp")
    created = printer.submit(submit_request())
    steps = simulator.timeline("stannp", created.printer_id, duplicates=[0])
    statuses = []
    for delivery in simulator.build_webhooks("http://127.0.0.1:9/unused", steps):
        printer.verify_webhook(WebhookRequest(delivery.body, delivery.headers))
        (event,) = printer.parse_webhook(delivery.body, delivery.headers["Content-Type"])
        assert event.printer_id == created.printer_id
        assert event.reference == "pc:7:1042:0"
        statuses.append(event.status)
    assert statuses == [S.RECEIVED, S.RECEIVED, S.PRODUCING, S.HANDED_OVER, S.LOCAL_DELIVERY, S.DELIVERED]


def test_a_5xx_after_the_piece_was_created_is_transient_and_the_409_replay_returns_it(simulator: Simulator) -> None:
    printer = get_printer("stannp")
    simulator.inject("stannp", Fault.status_after_create(502, method="POST"))
    with pytest.raises(PrinterError) as lost:
        printer.submit(submit_request())
    assert (lost.value.permanent, lost.value.status_code) == (False, 502)
    assert simulator.physical_pieces("stannp") == 1
    replayed = printer.submit(submit_request())
    assert replayed.printer_id == simulator.pieces("stannp")[0].id
    assert simulator.physical_pieces("stannp") == 1


def test_the_simulator_replays_only_a_byte_identical_body_as_stannp_does(simulator: Simulator) -> None:
    # A client that re-orders (or re-encodes) its fields between retries must fail here
    # as it would at Stannp; comparing parsed forms would let that bug through.
    url, headers = simulator.url("stannp") + "/postcards/create", {"X-Idempotency-Key": "pc:7:1:0:key"}
    form = [
        ("size", "A6"),
        ("front", "https://p.example/f.jpg"),
        ("recipient[address1]", "1 A St"),
        ("recipient[country]", "GB"),
    ]
    auth = ("k", "")
    assert httpx.post(url, data=dict(form), headers=headers, auth=auth).status_code == 200
    assert httpx.post(url, data=dict(form), headers=headers, auth=auth).status_code == 409
    reordered = httpx.post(url, data=dict(reversed(form)), headers=headers, auth=auth)
    assert reordered.status_code == 400
    assert simulator.physical_pieces("stannp") == 1
