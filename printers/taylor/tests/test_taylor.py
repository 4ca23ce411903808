from __future__ import annotations

import contextlib
import copy
import datetime as dt
import json
import time
from functools import partial
from typing import Any
from unittest import mock

import httpx
import pytest
from django.core.exceptions import ImproperlyConfigured
from hypothesis import given
from hypothesis import strategies as st

from mailpieces.status import MailpieceStatus as S
from printers.base import Address, PrinterError, SubmitRequest, WebhookRequest, WebhookVerificationError
from printers.registry import get_printer, printer_conf
from printers.signing import hmac_sha256_hex
from printers.simulator import Simulator
from printers.taylor.client import TaylorPrinter
from printers.taylor.status import STATUS_MAP
from printers.testing import (
    assert_a_lost_create_replays_to_its_piece,
    assert_lookup_finds,
    make_request,
    read_fixture,
)
from printers.testing import offline as offline_printer

fixture = partial(read_fixture, "taylor")
offline = partial(offline_printer, TaylorPrinter)
SPRINGFIELD = Address(name="Ada Byron", address1="1 Main St", city="Springfield", state="IL", zip="62701")

STATUS_ROWS = [
    # The spec's rows.
    ("9", S.PROCESSED),
    ("10", S.PROCESSED),
    ("11", S.HANDED_OVER),
    ("12", S.DELIVERED),
    ("-1", S.ERROR),
    # Codes arrive as ints or padded strings.
    ("011", S.HANDED_OVER),
    (" 12 ", S.DELIVERED),
    # Unmapped.
    ("0", S.UNKNOWN),
    ("13", S.UNKNOWN),
    ("delivered", S.UNKNOWN),
    ("", S.UNKNOWN),
]


def signature(body: bytes, *, at: float | None = None, secret: str | None = None) -> str:
    stamp = str(int(time.time() if at is None else at))
    key = secret or str(printer_conf("taylor")["webhook_secret"])
    return f"t={stamp},v1={hmac_sha256_hex(key, stamp.encode() + b'.' + body)}"


def signed(body: bytes, **kwargs: Any) -> WebhookRequest:
    return WebhookRequest(body, {"X-Taylor-Signature": signature(body, **kwargs)})


def with_status_map(settings: Any, table: dict[str, str] | None) -> None:
    conf = copy.deepcopy(settings.PRINTERS_CONF)
    conf["taylor"]["status_map"] = table
    settings.PRINTERS_CONF = conf


def submit_request(reference: str = "pc:7:3001:0", **changes: Any) -> SubmitRequest:
    values = {
        "to": SPRINGFIELD,
        "mail_date": dt.date(2026, 12, 1),
        "metadata": {"recipient_id": "3001", "campaign_id": "88"},
    }
    return make_request(reference, **{**values, **changes})


# ---------------------------------------------------------------------- status map
@pytest.mark.parametrize(("code", "ours"), STATUS_ROWS)
def test_it_converts_each_taylor_code(code: str, ours: S) -> None:
    assert TaylorPrinter.convert_status(code) == ours


def test_it_covers_every_row_of_the_status_map_in_the_table() -> None:
    assert set(STATUS_MAP) <= {code for code, _ in STATUS_ROWS}


def test_it_lays_the_configured_status_map_over_the_spec_table(settings: Any) -> None:
    with_status_map(settings, {"13": "Returned", "10": "Producing", "-1": "Unknown"})
    assert TaylorPrinter.convert_status("13") == S.RETURNED
    assert TaylorPrinter.convert_status("10") == S.PRODUCING
    assert TaylorPrinter.convert_status("-1") == S.UNKNOWN
    assert TaylorPrinter.convert_status("9") == S.PROCESSED


def test_it_accepts_integer_codes_in_the_configured_map(settings: Any) -> None:
    with_status_map(settings, {13: "Returned"})  # type: ignore[dict-item]
    assert TaylorPrinter.convert_status("13") == S.RETURNED


def test_it_uses_the_spec_table_when_no_map_is_configured(settings: Any) -> None:
    with_status_map(settings, None)
    assert TaylorPrinter.convert_status("11") == S.HANDED_OVER


def test_it_refuses_a_configured_map_naming_an_unknown_status(settings: Any) -> None:
    with_status_map(settings, {"13": "Lost"})
    with pytest.raises(ImproperlyConfigured, match=r"'13'.*Lost"):
        TaylorPrinter(printer_conf("taylor"))


# ---------------------------------------------------------------------- fixtures
def test_it_parses_a_processed_event() -> None:
    (event,) = offline().parse_webhook(fixture("status_processed"))
    assert (event.printer_id, event.vendor_status, event.status) == ("tay_000731", "10", S.PROCESSED)
    assert event.event_id == "tev_01HZX4K9Q7"
    assert event.reference == "pc:7:3001:0"
    assert event.occurred_at == dt.datetime(2026, 4, 1, 8, 15, tzinfo=dt.UTC)


def test_it_parses_a_handed_over_event_with_a_string_code() -> None:
    (event,) = offline().parse_webhook(fixture("status_handed_over"))
    assert (event.vendor_status, event.status) == ("11", S.HANDED_OVER)


def test_it_parses_a_delivered_event() -> None:
    (event,) = offline().parse_webhook(fixture("status_delivered"))
    assert event.status == S.DELIVERED
    assert event.occurred_at == dt.datetime(2026, 4, 5, 12, 2, tzinfo=dt.UTC)


def test_it_parses_an_error_event() -> None:
    (event,) = offline().parse_webhook(fixture("status_error"))
    assert (event.printer_id, event.vendor_status, event.status) == ("tay_000732", "-1", S.ERROR)


def test_it_rejects_a_malformed_payload_with_a_clear_error() -> None:
    with pytest.raises(ValueError, match="not a Taylor event"):
        offline().parse_webhook(fixture("malformed"))


@pytest.mark.parametrize("raw", [b"nope", b"\xff", b"[]", b'{"id": "tev_1", "mailpiece_id": "tay_1", "status": true}'])
def test_it_raises_value_error_for_garbage(raw: bytes) -> None:
    with pytest.raises(ValueError, match="taylor"):
        offline().parse_webhook(raw)


def test_it_reads_a_zoneless_time_as_utc() -> None:
    body = b'{"id": "tev_2", "mailpiece_id": "tay_2", "status": 12, "occurred_at": "2026-04-05T12:02:00"}'
    (event,) = offline().parse_webhook(body)
    assert event.occurred_at == dt.datetime(2026, 4, 5, 12, 2, tzinfo=dt.UTC)


# ---------------------------------------------------------------------- signatures
def test_it_accepts_a_valid_signature() -> None:
    offline().verify_webhook(signed(fixture("status_delivered")))


def test_it_accepts_a_millisecond_timestamp() -> None:
    body = fixture("status_delivered")
    stamp = str(int(time.time() * 1000))
    sig = hmac_sha256_hex(str(printer_conf("taylor")["webhook_secret"]), stamp.encode() + b"." + body)
    offline().verify_webhook(WebhookRequest(body, {"X-Taylor-Signature": f"t={stamp},v1={sig}"}))


def test_it_accepts_any_matching_v1_entry_while_secrets_rotate() -> None:
    body = fixture("status_delivered")
    good = signature(body)
    header = good.replace(",v1=", ",v1=" + "0" * 64 + ",v1=")
    offline().verify_webhook(WebhookRequest(body, {"X-Taylor-Signature": header}))


def test_it_rejects_a_tampered_body() -> None:
    request = signed(fixture("status_delivered"))
    with pytest.raises(WebhookVerificationError):
        offline().verify_webhook(WebhookRequest(request.body.replace(b"12", b"11"), request.headers))


def test_it_rejects_a_signature_made_with_another_secret() -> None:
    with pytest.raises(WebhookVerificationError):
        offline().verify_webhook(signed(fixture("status_delivered"), secret="someone-else"))


def test_it_rejects_a_missing_signature_header() -> None:
    with pytest.raises(WebhookVerificationError, match="missing"):
        offline().verify_webhook(WebhookRequest(fixture("status_delivered"), {}))


@pytest.mark.parametrize(
    "header", ["garbage", "t=1700000000", "v1=abc", "t=,v1=abc", "t=abc,v1=abc", "t=1700000000;v1=abc", ","]
)
def test_it_rejects_a_malformed_signature_header(header: str) -> None:
    with pytest.raises(WebhookVerificationError):
        offline().verify_webhook(WebhookRequest(fixture("status_delivered"), {"X-Taylor-Signature": header}))


@pytest.mark.parametrize("skew", [-600, 600])
def test_it_rejects_stale_and_future_timestamps(skew: int) -> None:
    with pytest.raises(WebhookVerificationError, match=r"stale|future"):
        offline().verify_webhook(signed(fixture("status_delivered"), at=time.time() + skew))


def test_it_rejects_re_serialized_json() -> None:
    raw = fixture("status_delivered")
    reserialized = json.dumps(json.loads(raw)).encode()
    assert reserialized != raw
    with pytest.raises(WebhookVerificationError):
        offline().verify_webhook(WebhookRequest(reserialized, signed(raw).headers))


def test_it_rejects_every_webhook_when_no_secret_is_configured() -> None:
    body = fixture("status_delivered")
    with pytest.raises(WebhookVerificationError, match="secret"):
        offline(webhook_secret="").verify_webhook(signed(body, secret="anything"))


@given(body=st.binary(max_size=64), header=st.text(max_size=80))
def test_it_never_raises_anything_but_a_verification_error(body: bytes, header: str) -> None:
    printer = TaylorPrinter({"webhook_secret": "test-taylor-secret"})
    with contextlib.suppress(WebhookVerificationError):
        printer.verify_webhook(WebhookRequest(body, {"X-Taylor-Signature": header}))


# ---------------------------------------------------------------------- client
def test_it_sends_our_wire_format_through_the_http_seam() -> None:
    answer = httpx.Response(201, json={"id": "tay_9", "reference": "pc:7:3001:0", "status": 0})
    with mock.patch("printers.http.request", autospec=True, return_value=answer) as sent:
        submission = offline(api_key="k_live", base_url="https://taylor.example/v1/").submit(submit_request())
    assert submission.printer_id == "tay_9"
    (method, url), kwargs = sent.call_args
    assert (method, url) == ("POST", "https://taylor.example/v1/mailpieces")
    assert kwargs["headers"] == {"Authorization": "Bearer k_live", "Idempotency-Key": "pc:7:3001:0:key"}
    assert kwargs["json"]["mail_date"] == "2026-12-01"
    assert kwargs["json"]["to"]["zip"] == "62701"


def test_it_submits_once_and_replays_with_the_same_key(simulator: Simulator) -> None:
    printer = get_printer("taylor")
    first = printer.submit(submit_request())
    again = printer.submit(submit_request())
    assert first.printer_id.startswith("tay_")
    assert again.printer_id == first.printer_id
    assert simulator.physical_pieces("taylor", "pc:7:3001:0:key") == 1


def test_it_recovers_from_a_timeout_after_the_piece_was_created(simulator: Simulator) -> None:
    assert_a_lost_create_replays_to_its_piece(simulator, get_printer("taylor"), submit_request())


def test_the_simulator_answers_a_changed_body_under_a_known_key_as_our_contract_says(simulator: Simulator) -> None:
    url, headers = (
        simulator.url("taylor") + "/mailpieces",
        {"Authorization": "Bearer k", "Idempotency-Key": "k-123456789"},
    )
    body = {"reference": "pc:7:1:0", "to": {"address1": "1 Main St"}}
    assert httpx.post(url, json=body, headers=headers).status_code == 201
    assert httpx.post(url, json=body, headers=headers).status_code == 200
    changed = httpx.post(url, json={**body, "size": "6x9"}, headers=headers)
    assert (changed.status_code, changed.json()["error"]["code"]) == (422, "idempotency_key_reused")
    assert simulator.physical_pieces("taylor") == 1


def test_it_looks_up_a_piece_by_reference(simulator: Simulator) -> None:
    printer = get_printer("taylor")
    assert_lookup_finds(printer, "pc:7:3001:0", printer.submit(submit_request()).printer_id)


def test_it_cancels_before_production_and_refuses_after(simulator: Simulator) -> None:
    printer = get_printer("taylor")
    early = printer.submit(submit_request())
    printer.cancel(early.printer_id)
    assert simulator.physical_pieces("taylor", "pc:7:3001:0") == 0
    late = printer.submit(submit_request("pc:7:3002:0"))
    simulator.update("taylor", late.printer_id, status="10")
    with pytest.raises(PrinterError) as refused:
        printer.cancel(late.printer_id)
    assert (refused.value.permanent, refused.value.status_code) == (True, 409)


@pytest.mark.parametrize(("code", "permanent"), [(429, False), (503, False), (401, True)])
def test_it_classifies_vendor_errors(simulator: Simulator, code: int, permanent: bool) -> None:
    simulator.inject("taylor", code)
    with pytest.raises(PrinterError) as failed:
        get_printer("taylor").submit(submit_request())
    assert failed.value.permanent is permanent


def test_it_refuses_an_unknown_size_before_calling_taylor(simulator: Simulator) -> None:
    with pytest.raises(PrinterError, match="size"):
        get_printer("taylor").submit(submit_request(size="A6"))
    assert simulator.captured("taylor") == []


def test_it_verifies_and_parses_the_simulators_signed_webhooks(simulator: Simulator) -> None:
    printer = get_printer("taylor")
    created = printer.submit(submit_request())
    steps = simulator.timeline("taylor", created.printer_id, order=[0, 2, 1, 3], duplicates=[3])
    events = []
    for delivery in simulator.build_webhooks("http://127.0.0.1:9/unused", steps):
        printer.verify_webhook(WebhookRequest(delivery.body, delivery.headers))
        events.extend(printer.parse_webhook(delivery.body))
    assert [e.status for e in events] == [S.PROCESSED, S.HANDED_OVER, S.PROCESSED, S.DELIVERED, S.DELIVERED]
    assert events[3].event_id == events[4].event_id  # a redelivery keeps its id: the inbox dedupes it
    assert {e.reference for e in events} == {"pc:7:3001:0"}


@pytest.mark.parametrize("code", ["1_2", "\u0661\u0662", "\uff11\uff12"])
def test_it_does_not_read_look_alike_codes_as_a_mapped_status(code: str) -> None:
    # int() reads all three as 12 (Delivered); they are garbage, so Unknown.
    assert TaylorPrinter.convert_status(code) == S.UNKNOWN


def test_it_converts_a_code_of_thousands_of_digits_to_unknown_without_raising() -> None:
    assert TaylorPrinter.convert_status("1" * 5000) == S.UNKNOWN
