from __future__ import annotations

import contextlib
import datetime as dt
import json
import time
from typing import Any
from unittest import mock

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from svix.webhooks import Webhook

from mailpieces.status import MailpieceStatus as S
from printers import http
from printers.base import Address, PrinterError, SubmitRequest, WebhookRequest, WebhookVerificationError
from printers.intelliprint.client import IntelliPrintPrinter
from printers.intelliprint.status import STATUS_MAP
from printers.registry import get_printer, printer_conf
from printers.simulator import Fault, Simulator
from printers.testing import make_request, read_fixture

WHITBY = Address(name="Grace Hopper", address1="2 Pier Road", city="Whitby", zip="YO21 3PU", country="GB")
OTHER_SECRET = "whsec_c29tZW9uZS1lbHNlcy1zZWNyZXQta2V5LTEyMzQ="

STATUS_ROWS = [
    # The spec's rows (invalid_address: listed under Cancelled and Error; we chose Error).
    ("waiting_to_print", S.RECEIVED),
    ("rendered", S.SENT),
    ("failed", S.ERROR),
    ("invalid_address", S.ERROR),
    # IntelliPrint's public vocabulary.
    ("draft", S.SUBMITTED),
    ("printing", S.PRODUCING),
    ("enclosing", S.PRODUCING),
    ("shipping", S.HANDED_OVER),
    ("sent", S.IN_TRANSIT),
    ("returned", S.RETURNED),
    ("failed_wrong_address", S.ERROR),
    ("cancelled", S.CANCELLED),
    # Unmapped.
    ("delivered", S.UNKNOWN),
    ("", S.UNKNOWN),
]


def fixture(name: str) -> bytes:
    return read_fixture("intelliprint", name)


def offline(**conf: Any) -> IntelliPrintPrinter:
    return IntelliPrintPrinter({**printer_conf("intelliprint"), **conf})


def svix_headers(body: bytes, *, secret: str | None = None, at: float | None = None, msg_id: str = "msg_2Ab") -> dict:
    when = dt.datetime.fromtimestamp(int(time.time() if at is None else at), dt.UTC)
    signature = Webhook(secret or printer_conf("intelliprint")["webhook_secret"]).sign(msg_id, when, body.decode())
    return {"svix-id": msg_id, "svix-timestamp": str(int(when.timestamp())), "svix-signature": signature}


def submit_request(reference: str = "pc:7:2001:0", **changes: Any) -> SubmitRequest:
    values = {
        "to": WHITBY,
        "size": "A6",
        "mail_date": dt.date(2026, 12, 1),
        "metadata": {"recipient_id": "2001", "campaign_id": "88"},
    }
    return make_request(reference, **{**values, **changes})


# ---------------------------------------------------------------------- status map
@pytest.mark.parametrize(("vendor", "ours"), STATUS_ROWS)
def test_it_converts_each_intelliprint_status(vendor: str, ours: S) -> None:
    assert IntelliPrintPrinter.convert_status(vendor) == ours


def test_it_covers_every_row_of_the_status_map_in_the_table() -> None:
    assert set(STATUS_MAP) <= {vendor for vendor, _ in STATUS_ROWS}


def test_it_maps_invalid_address_to_error_not_cancelled() -> None:
    assert IntelliPrintPrinter.convert_status("invalid_address") == S.ERROR


def test_it_maps_nothing_to_delivered_because_intelliprint_reports_no_delivery() -> None:
    assert S.DELIVERED not in STATUS_MAP.values()


# ---------------------------------------------------------------------- fixtures
def test_it_parses_letter_updated_waiting_to_print() -> None:
    (event,) = offline().parse_webhook(fixture("letter_updated_waiting_to_print"))
    assert event.printer_id == "print_9TgYc04nBd"
    assert event.reference == "pc:7:2001:0"
    assert event.status == S.RECEIVED
    assert event.occurred_at is None
    assert event.event_id == "ltr_3KpZr81fWq:waiting_to_print"
    assert event.raw["id"] == "ltr_3KpZr81fWq"


def test_it_parses_letter_updated_shipping_with_its_shipped_date() -> None:
    (event,) = offline().parse_webhook(fixture("letter_updated_shipping"))
    assert event.status == S.HANDED_OVER
    assert event.occurred_at == dt.datetime.fromtimestamp(1772193600, dt.UTC)
    assert event.event_id == "ltr_3KpZr81fWq:shipping:1772193600"


def test_it_parses_letter_updated_returned_with_the_return_date() -> None:
    (event,) = offline().parse_webhook(fixture("letter_updated_returned"))
    assert event.status == S.RETURNED
    assert event.occurred_at == dt.datetime.fromtimestamp(1772884800, dt.UTC)


def test_it_parses_letter_updated_failed_wrong_address_as_error() -> None:
    (event,) = offline().parse_webhook(fixture("letter_updated_failed_wrong_address"))
    assert (event.printer_id, event.status) == ("print_2XcVb77pQa", S.ERROR)


def test_it_ignores_mailing_list_events() -> None:
    assert offline().parse_webhook(fixture("mailing_list_addresses_validated")) == []


@pytest.mark.parametrize(
    "body",
    [
        {"type": "mailing_list.addresses_validated", "id": "mal_z", "status": {"valid": 9, "invalid": 1}},
        {"type": "mailing_list.addresses_validated", "id": "mal_z", "reference": 12345},
    ],
)
def test_another_event_type_using_a_letter_fields_name_is_ignored_not_quarantined(body: dict[str, Any]) -> None:
    """Only letter.updated is read against the letter's fields; an event of
    another type is not ours to read, whatever its fields hold."""
    assert offline().parse_webhook(json.dumps(body).encode()) == []


def test_a_letter_update_with_a_field_of_the_wrong_type_is_still_malformed() -> None:
    body = {"type": "letter.updated", "id": "ltr_1", "print_id": "print_1", "status": {"valid": 9}}
    with pytest.raises(ValueError, match=r"not an IntelliPrint event: status: input should be a valid string$"):
        offline().parse_webhook(json.dumps(body).encode())


def test_it_rejects_a_malformed_payload_with_a_clear_error() -> None:
    with pytest.raises(ValueError, match="not an IntelliPrint event"):
        offline().parse_webhook(fixture("malformed"))


@pytest.mark.parametrize("raw", [b"nope", b"\xff", b"[]", b'{"type": "letter.updated", "status": "sent"}'])
def test_it_raises_value_error_for_garbage(raw: bytes) -> None:
    with pytest.raises(ValueError, match="intelliprint"):
        offline().parse_webhook(raw)


# ---------------------------------------------------------------------- signatures (Svix)
def test_it_accepts_a_valid_svix_signature() -> None:
    body = fixture("letter_updated_shipping")
    offline().verify_webhook(WebhookRequest(body, svix_headers(body)))


def test_it_accepts_any_matching_entry_while_secrets_rotate() -> None:
    body = fixture("letter_updated_shipping")
    headers = svix_headers(body)
    headers["svix-signature"] = (
        svix_headers(body, secret=OTHER_SECRET)["svix-signature"] + " " + headers["svix-signature"]
    )
    offline().verify_webhook(WebhookRequest(body, headers))


def test_it_rejects_a_tampered_body() -> None:
    body = fixture("letter_updated_shipping")
    with pytest.raises(WebhookVerificationError):
        offline().verify_webhook(WebhookRequest(body.replace(b"shipping", b"sent"), svix_headers(body)))


def test_it_rejects_a_signature_made_with_another_secret() -> None:
    body = fixture("letter_updated_shipping")
    with pytest.raises(WebhookVerificationError) as refused:
        offline().verify_webhook(WebhookRequest(body, svix_headers(body, secret=OTHER_SECRET)))
    # Said in the printer's name, not the signing library's.
    assert str(refused.value).startswith("IntelliPrint webhook signature is not valid: ")


@pytest.mark.parametrize("missing", ["svix-id", "svix-timestamp", "svix-signature"])
def test_it_rejects_a_missing_svix_header(missing: str) -> None:
    body = fixture("letter_updated_shipping")
    headers = {k: v for k, v in svix_headers(body).items() if k != missing}
    with pytest.raises(WebhookVerificationError):
        offline().verify_webhook(WebhookRequest(body, headers))


@pytest.mark.parametrize(
    ("name", "value"),
    [("svix-signature", "garbage"), ("svix-signature", "v1,!!!not-base64"), ("svix-timestamp", "yesterday")],
)
def test_it_rejects_a_malformed_svix_header(name: str, value: str) -> None:
    body = fixture("letter_updated_shipping")
    with pytest.raises(WebhookVerificationError):
        offline().verify_webhook(WebhookRequest(body, {**svix_headers(body), name: value}))


@pytest.mark.parametrize("skew", [-600, 600])
def test_it_rejects_stale_and_future_timestamps(skew: int) -> None:
    body = fixture("letter_updated_shipping")
    with pytest.raises(WebhookVerificationError):
        offline().verify_webhook(WebhookRequest(body, svix_headers(body, at=time.time() + skew)))


def test_it_rejects_re_serialized_json() -> None:
    raw = fixture("letter_updated_shipping")
    reserialized = json.dumps(json.loads(raw)).encode()
    assert reserialized != raw
    with pytest.raises(WebhookVerificationError):
        offline().verify_webhook(WebhookRequest(reserialized, svix_headers(raw)))


@pytest.mark.parametrize("secret", ["", "whsec_%%%not-base64%%%"])
def test_it_rejects_every_webhook_without_a_usable_secret(secret: str) -> None:
    body = fixture("letter_updated_shipping")
    with pytest.raises(WebhookVerificationError):
        offline(webhook_secret=secret).verify_webhook(WebhookRequest(body, svix_headers(body)))


@given(body=st.binary(max_size=64), sig=st.text(max_size=60), stamp=st.text(max_size=12))
def test_it_never_raises_anything_but_a_verification_error(body: bytes, sig: str, stamp: str) -> None:
    printer = IntelliPrintPrinter({"webhook_secret": "whsec_dGVzdC1pbnRlbGxpcHJpbnQtc2VjcmV0LWtleQ=="})
    with contextlib.suppress(WebhookVerificationError):
        printer.verify_webhook(
            WebhookRequest(body, {"svix-id": "msg_1", "svix-timestamp": stamp, "svix-signature": sig})
        )


# ---------------------------------------------------------------------- client against the simulator
@pytest.fixture
def simulator(simulator: Simulator, settings: Any) -> Simulator:
    # One worker at a time here: no race to settle, so no second to wait before deciding
    # (test_exactly_once.py races with the production wait).
    settings.PRINTERS_CONF["intelliprint"]["settle_s"] = 0.0
    return simulator


def creates(simulator: Simulator) -> list[Any]:
    return [r for r in simulator.captured("intelliprint", "POST") if r.path == "/v1/prints"]


def test_it_creates_an_unconfirmed_job_then_confirms_it(simulator: Simulator) -> None:
    submission = get_printer("intelliprint").submit(submit_request())
    assert submission.printer_id.startswith("print_")
    assert submission.extra_ids["letter_ids"].startswith("ltr_")
    lookup, create, reconcile, confirm = simulator.captured("intelliprint")
    assert (lookup.method, lookup.path, lookup.query["reference"]) == ("GET", "/v1/prints", ["pc:7:2001:0"])
    assert lookup.query["sort_order"] == ["asc"]
    assert lookup.query["limit"] == ["100"]
    assert (reconcile.method, reconcile.path) == ("GET", "/v1/prints")
    assert create.headers["authorization"] == "Bearer test_intelliprint_key"
    sent = json.loads(create.body)
    assert (sent["confirmed"], sent["reference"], sent["metadata"]["recipient_id"]) == (False, "pc:7:2001:0", "2001")
    assert sent["postage"] == {"service": "uk_second_class", "ideal_envelope": "postcard_a6", "mail_date": 1796083200}
    assert sent["recipients"][0]["address"]["line"] == "2 Pier Road, Whitby"
    assert (confirm.path, json.loads(confirm.body)) == (f"/v1/prints/{submission.printer_id}", {"confirmed": True})
    assert simulator.physical_pieces("intelliprint") == 1


def test_it_returns_the_confirmed_job_on_a_replay_without_creating_another(simulator: Simulator) -> None:
    printer = get_printer("intelliprint")
    first = printer.submit(submit_request())
    again = printer.submit(submit_request())
    assert again.printer_id == first.printer_id
    assert len(creates(simulator)) == 1
    assert simulator.physical_pieces("intelliprint") == 1


def test_it_survives_a_crash_between_create_and_confirm(simulator: Simulator) -> None:
    real_request = http.request

    def crash_on_confirm(method: str, url: str, **kwargs: Any) -> httpx.Response:
        if method == "POST" and "/prints/print_" in url:
            raise RuntimeError("worker killed between create and confirm")
        return real_request(method, url, **kwargs)

    with mock.patch("printers.http.request", autospec=True, side_effect=crash_on_confirm), pytest.raises(RuntimeError):
        get_printer("intelliprint").submit(submit_request())
    assert simulator.physical_pieces("intelliprint") == 0  # created, unconfirmed: nothing prints yet
    assert len(simulator.pieces("intelliprint")) == 1

    submission = get_printer("intelliprint").submit(submit_request())
    assert submission.printer_id == simulator.pieces("intelliprint")[0].id
    assert len(creates(simulator)) == 1
    assert simulator.physical_pieces("intelliprint") == 1


def test_it_does_not_confirm_twice_when_the_confirm_answer_timed_out(simulator: Simulator) -> None:
    printer = get_printer("intelliprint")
    simulator.inject("intelliprint", Fault.timeout_after_create(hang_s=1.0, method="POST", path_contains="/prints/"))
    with pytest.raises(PrinterError):
        printer.submit(submit_request())
    assert simulator.physical_pieces("intelliprint") == 1
    printer.submit(submit_request())  # the simulator refuses to update a confirmed job: this must not try
    assert simulator.physical_pieces("intelliprint") == 1


def test_it_looks_up_live_and_testmode_jobs_by_reference(simulator: Simulator) -> None:
    printer = get_printer("intelliprint")
    live = printer.submit(submit_request())
    test = printer.submit(submit_request("pc:7:2002:0", test=True))
    assert printer.lookup("pc:7:2001:0") == live
    found = printer.lookup("pc:7:2002:0")
    assert found is not None
    assert found.printer_id == test.printer_id
    assert printer.lookup("pc:7:9999:0") is None


def test_it_looks_up_an_unconfirmed_job_as_no_piece_and_submit_adopts_it(simulator: Simulator) -> None:
    printer = get_printer("intelliprint")
    job = printer.create(printer.payload(submit_request()))  # an attempt that died before confirming
    assert printer.lookup("pc:7:2001:0") is None  # it never prints: not a piece
    assert printer.submit(submit_request()).printer_id == job["id"]
    assert len(creates(simulator)) == 1
    assert simulator.physical_pieces("intelliprint") == 1


def test_a_testmode_job_never_counts_as_a_physical_piece(simulator: Simulator) -> None:
    get_printer("intelliprint").submit(submit_request(test=True))
    (job,) = simulator.pieces("intelliprint")
    assert job.response["confirmed"] is True
    assert simulator.physical_pieces("intelliprint") == 0


def test_it_refuses_to_guess_when_a_reference_has_more_jobs_than_one_page(simulator: Simulator) -> None:
    printer, handler = get_printer("intelliprint"), simulator.handlers["intelliprint"]
    body = json.dumps(printer.payload(submit_request())).encode()
    for _ in range(101):
        handler.create(body)  # straight into the simulator: 101 HTTP round trips add nothing
    with pytest.raises(PrinterError, match="more than 100 jobs") as refused:
        printer.submit(submit_request())
    # Not permanent: jobs exist under the reference, so the card waits for a
    # person (a permanent refusal would let a retry print it under a new one).
    assert refused.value.permanent is False
    assert simulator.physical_pieces("intelliprint") == 0


def test_it_cancels_a_confirmed_job_before_printing(simulator: Simulator) -> None:
    printer = get_printer("intelliprint")
    created = printer.submit(submit_request())
    printer.cancel(created.printer_id)
    (delete,) = simulator.captured("intelliprint", "DELETE")
    assert delete.path == f"/v1/prints/{created.printer_id}"
    assert simulator.physical_pieces("intelliprint") == 0


def test_it_reports_a_late_cancel_as_a_permanent_error(simulator: Simulator) -> None:
    printer = get_printer("intelliprint")
    created = printer.submit(submit_request())
    simulator.update("intelliprint", created.printer_id, status="printing")
    with pytest.raises(PrinterError) as refused:
        printer.cancel(created.printer_id)
    assert refused.value.permanent is True


@pytest.mark.parametrize(("code", "permanent"), [(429, False), (500, False), (401, True), (402, True)])
def test_it_classifies_vendor_errors(simulator: Simulator, code: int, permanent: bool) -> None:
    simulator.inject("intelliprint", code)
    with pytest.raises(PrinterError) as failed:
        get_printer("intelliprint").submit(submit_request())
    assert failed.value.permanent is permanent
    assert failed.value.status_code == code


def test_it_refuses_an_unknown_size_before_creating_anything(simulator: Simulator) -> None:
    with pytest.raises(PrinterError, match="size") as refused:
        get_printer("intelliprint").submit(submit_request(size="A4"))
    assert refused.value.permanent is True
    assert creates(simulator) == []


def test_it_verifies_and_parses_the_simulators_svix_webhooks(simulator: Simulator) -> None:
    printer = get_printer("intelliprint")
    created = printer.submit(submit_request())
    steps = simulator.timeline("intelliprint", created.printer_id, missing=[2])
    statuses = []
    for delivery in simulator.build_webhooks("http://127.0.0.1:9/unused", steps):
        printer.verify_webhook(WebhookRequest(delivery.body, delivery.headers))
        (event,) = printer.parse_webhook(delivery.body)
        assert (event.printer_id, event.reference) == (created.printer_id, "pc:7:2001:0")
        statuses.append(event.status)
    assert statuses == [S.RECEIVED, S.PRODUCING, S.HANDED_OVER, S.IN_TRANSIT]


def test_a_job_confirmed_by_a_concurrent_attempt_is_success_not_an_error(simulator: Simulator) -> None:
    printer = get_printer("intelliprint")
    real_request = http.request
    raced = False

    def confirm_first(method: str, url: str, **kwargs: Any) -> httpx.Response:
        nonlocal raced
        if method == "POST" and "/prints/print_" in url and not raced:
            raced = True  # another worker confirms the same job just before us
            real_request(method, url, **kwargs)
        return real_request(method, url, **kwargs)

    with mock.patch("printers.http.request", autospec=True, side_effect=confirm_first):
        submission = printer.submit(submit_request())
    assert submission.printer_id == simulator.pieces("intelliprint")[0].id
    assert len(creates(simulator)) == 1
    assert simulator.physical_pieces("intelliprint") == 1
