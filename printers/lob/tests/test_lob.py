from __future__ import annotations

import base64
import datetime as dt
import json
import time

import httpx
import pytest

from mailpieces.status import MailpieceStatus as S
from printers.base import Address, PrinterError, WebhookRequest, WebhookVerificationError
from printers.lob.client import LobPrinter, send_date_for
from printers.lob.status import STATUS_MAP
from printers.signing import hmac_sha256_hex
from printers.simulator import Fault
from printers.testing import (
    assert_a_lost_create_replays_to_its_piece,
    assert_lookup_finds,
    configured,
    fixtures_dir,
    make_request,
)

FIXTURES = fixtures_dir("lob")
SECRET = "test-lob-secret"


@pytest.fixture
def lob(simulator) -> LobPrinter:
    return configured(LobPrinter)


# ---------------------------------------------------------------- submit / replay
def test_it_creates_a_postcard_with_basic_auth_key_use_type_size_and_metadata(lob, simulator):
    submission = lob.submit(make_request())
    assert submission.printer_id.startswith("psc_")
    assert submission.reference == "pc:7:4242:0"
    [sent] = simulator.captured("lob", "POST")
    assert sent.path == "/v1/postcards"
    assert sent.headers["idempotency-key"] == "pc:7:4242:0:key"
    assert base64.b64decode(sent.headers["authorization"].split()[1]) == b"test_lob_key:"
    body = json.loads(sent.body)
    assert body["use_type"] == "marketing"
    assert body["size"] == "4x6"
    assert body["metadata"] == {"reference": "pc:7:4242:0", "recipient_id": "4242", "campaign_id": "7"}
    assert body["to"]["address_line2"] == "Ste 6100"
    assert "send_date" not in body


def test_it_replays_the_same_key_to_the_same_postcard_and_one_physical_piece(lob, simulator):
    first = lob.submit(make_request())
    second = lob.submit(make_request())
    assert second.printer_id == first.printer_id
    assert simulator.physical_pieces("lob", "pc:7:4242:0:key") == 1


def test_it_creates_a_second_piece_under_a_new_key(lob, simulator):
    lob.submit(make_request())
    lob.submit(make_request(idempotency_key="pc-7-4242-1", reference="pc:7:4242:1"))
    assert simulator.physical_pieces("lob") == 2


def test_it_sends_a_send_date_for_a_future_mail_date(lob, simulator):
    mail_date = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=30)
    lob.submit(make_request(mail_date=mail_date))
    assert json.loads(simulator.captured("lob", "POST")[0].body)["send_date"] == mail_date.isoformat()


def test_it_mails_at_once_when_the_mail_date_is_today_or_past():
    today = dt.date(2026, 3, 1)
    assert send_date_for(today, today=today) is None
    assert send_date_for(dt.date(2026, 2, 1), today=today) is None
    assert send_date_for(dt.date(2026, 8, 28), today=today) == "2026-08-28"  # day 180


def test_it_refuses_a_mail_date_beyond_180_days_without_calling_lob(lob, simulator):
    far = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=181)
    with pytest.raises(PrinterError, match="180 days") as info:
        lob.submit(make_request(mail_date=far))
    assert info.value.permanent
    assert simulator.captured("lob") == []


def test_it_refuses_metadata_lob_would_reject(lob, simulator):
    with pytest.raises(PrinterError, match="20 keys") as info:
        lob.submit(make_request(metadata={f"k{i}": "v" for i in range(20)}))
    assert info.value.permanent
    with pytest.raises(PrinterError, match="no quotes"):
        lob.submit(make_request(metadata={"note": 'say "hi"'}))
    assert simulator.captured("lob") == []


def test_it_refuses_an_unknown_size(lob):
    with pytest.raises(PrinterError, match="size") as info:
        lob.submit(make_request(size="A6"))
    assert info.value.permanent


# ---------------------------------------------------------------- errors
def test_it_retries_a_429_as_transient_and_then_succeeds_with_one_piece(lob, simulator):
    simulator.inject("lob", 429)
    with pytest.raises(PrinterError) as info:
        lob.submit(make_request())
    assert (info.value.permanent, info.value.status_code, info.value.code) == (False, 429, "rate_limit_exceeded")
    assert info.value.retry_after is not None
    assert lob.submit(make_request()).printer_id.startswith("psc_")
    assert simulator.physical_pieces("lob", "pc:7:4242:0:key") == 1


@pytest.mark.parametrize("status", [500, 503])
def test_it_treats_5xx_as_transient(lob, simulator, status):
    simulator.inject("lob", status)
    with pytest.raises(PrinterError) as info:
        lob.submit(make_request())
    assert info.value.permanent is False
    assert simulator.physical_pieces("lob") == 0


def test_it_treats_a_422_as_permanent_with_lobs_code(lob, simulator):
    with pytest.raises(PrinterError) as info:
        lob.submit(
            make_request(to=Address(name="Ann", address1="1 Undeliverable Way", city="X", state="CA", zip="94107"))
        )
    assert (info.value.permanent, info.value.status_code) == (True, 422)
    assert info.value.code == "failed_deliverability_strictness"


def test_it_reports_an_address_over_50_characters_as_lob_does(lob):
    long_to = Address(name="Ann", address1="A" * 40, address2="B" * 11, city="X", state="CA", zip="94107")
    with pytest.raises(PrinterError) as info:
        lob.submit(make_request(to=long_to))
    assert info.value.code == "address_length_exceeds_limit"


def test_it_reports_a_bad_api_key_as_permanent(lob, simulator):
    lob.conf["api_key"] = ""
    with pytest.raises(PrinterError) as info:
        lob.submit(make_request())
    assert (info.value.permanent, info.value.status_code) == (True, 401)


def test_a_timeout_after_the_piece_was_created_is_transient_and_the_replay_makes_no_second_piece(lob, simulator):
    assert_a_lost_create_replays_to_its_piece(simulator, lob, make_request())


def test_a_dropped_connection_after_create_is_transient(lob, simulator):
    simulator.inject("lob", Fault.drop_after_create())
    with pytest.raises(PrinterError) as info:
        lob.submit(make_request())
    assert info.value.permanent is False
    assert simulator.physical_pieces("lob") == 1


# ---------------------------------------------------------------- lookup / cancel
def test_it_finds_a_postcard_by_our_reference(lob):
    created = lob.submit(make_request())
    lob.submit(make_request(idempotency_key="other", reference="pc:7:9999:0"))
    assert_lookup_finds(lob, "pc:7:4242:0", created.printer_id)


def test_after_key_expiry_lookup_finds_the_piece_a_blind_resubmit_would_duplicate(lob, simulator):
    created = lob.submit(make_request())
    simulator.advance(25 * 3600)
    found = lob.lookup("pc:7:4242:0")
    assert found is not None
    assert found.printer_id == created.printer_id
    # Why reconcile looks up first: past 24 h the same key prints again.
    assert lob.submit(make_request()).printer_id != created.printer_id
    assert simulator.physical_pieces("lob", "pc:7:4242:0:key") == 2


def test_it_cancels_a_postcard_and_lookup_then_ignores_it(lob, simulator):
    created = lob.submit(make_request())
    lob.cancel(created.printer_id)
    [delete] = simulator.captured("lob", "DELETE")
    assert delete.path == f"/v1/postcards/{created.printer_id}"
    assert lob.lookup("pc:7:4242:0") is None
    assert simulator.physical_pieces("lob") == 0


def test_cancelling_an_unknown_postcard_is_permanent(lob):
    with pytest.raises(PrinterError) as info:
        lob.cancel("psc_doesnotexist")
    assert (info.value.permanent, info.value.status_code) == (True, 404)


def test_cancelling_a_mailed_postcard_is_refused(lob, simulator):
    created = lob.submit(make_request())
    simulator.update("lob", created.printer_id, status="postcard.mailed")
    with pytest.raises(PrinterError) as info:
        lob.cancel(created.printer_id)
    assert info.value.permanent


# ---------------------------------------------------------------- status map
SPEC_ROWS = [
    ("postcard.created", S.PRODUCING),
    ("postcard.mailed", S.HANDED_OVER),
    ("postcard.in_transit", S.IN_TRANSIT),
    ("postcard.processed_for_delivery", S.LOCAL_DELIVERY),
    ("postcard.in_local_area", S.LOCAL_DELIVERY),
    ("postcard.delivered", S.DELIVERED),
    ("postcard.returned_to_sender", S.RETURNED),
    ("postcard.deleted", S.CANCELLED),
]
EXTENSION_ROWS = [
    ("postcard.rendered_pdf", S.PRODUCING),
    ("postcard.rendered_thumbnails", S.PRODUCING),
    ("postcard.re-routed", S.IN_TRANSIT),
    ("postcard.international_exit", S.IN_TRANSIT),
    ("postcard.failed", S.ERROR),
    ("postcard.rejected", S.ERROR),
    ("postcard.viewed", S.UNKNOWN),
    ("postcard.informed_delivery.email_sent", S.UNKNOWN),
    ("postcard.informed_delivery.email_opened", S.UNKNOWN),
    ("postcard.informed_delivery.email_clicked_through", S.UNKNOWN),
]


@pytest.mark.parametrize(("vendor_status", "expected"), SPEC_ROWS + EXTENSION_ROWS)
def test_it_converts_each_lob_event_type(vendor_status, expected):
    assert LobPrinter.convert_status(vendor_status) == expected


@pytest.mark.parametrize("vendor_status", ["postcard.re_routed", "letter.delivered", "", "POSTCARD.CREATED", "12"])
def test_it_converts_anything_else_to_unknown(vendor_status):
    assert LobPrinter.convert_status(vendor_status) == S.UNKNOWN


def test_the_table_has_no_row_the_tests_do_not_cover():
    assert set(STATUS_MAP) <= {vendor_status for vendor_status, _ in SPEC_ROWS + EXTENSION_ROWS}


# ---------------------------------------------------------------- webhook fixtures, one per event type
# When each fixture's event happened, by event type (the file is named after the type).
FIXTURE_TIMES = {
    "postcard.created": "2026-03-01T15:10:00+00:00",
    "postcard.rejected": "2026-03-02T15:11:00+00:00",
    "postcard.rendered_pdf": "2026-03-03T15:12:00+00:00",
    "postcard.rendered_thumbnails": "2026-03-04T15:13:00+00:00",
    "postcard.deleted": "2026-03-05T15:14:00+00:00",
    "postcard.failed": "2026-03-06T15:15:00+00:00",
    "postcard.mailed": "2026-03-01T08:30:00+00:00",
    "postcard.in_transit": "2026-03-02T09:30:00+00:00",
    "postcard.in_local_area": "2026-03-03T10:30:00+00:00",
    "postcard.processed_for_delivery": "2026-03-04T11:30:00+00:00",
    "postcard.delivered": "2026-03-05T12:30:00+00:00",
    "postcard.re-routed": "2026-03-03T10:30:00+00:00",
    "postcard.returned_to_sender": "2026-03-03T10:30:00+00:00",
    "postcard.international_exit": "2026-03-03T10:30:00+00:00",
    "postcard.viewed": "2026-03-06T15:24:00+00:00",
    "postcard.informed_delivery.email_sent": "2026-03-07T15:25:00+00:00",
    "postcard.informed_delivery.email_opened": "2026-03-08T15:26:00+00:00",
    "postcard.informed_delivery.email_clicked_through": "2026-03-09T15:27:00+00:00",
}


def fixture_name(event_type: str) -> str:
    return event_type.replace(".", "_").replace("-", "_") + ".json"


def test_every_fixture_file_has_a_row():
    files = {p.name for p in FIXTURES.glob("postcard_*.json")}
    assert files == {fixture_name(event_type) for event_type in FIXTURE_TIMES}


@pytest.mark.parametrize(("vendor_status", "occurred_at"), FIXTURE_TIMES.items())
def test_it_parses_each_lob_event_type(vendor_status, occurred_at):
    [event] = LobPrinter({}).parse_webhook((FIXTURES / fixture_name(vendor_status)).read_bytes())
    assert event.printer_id == "psc_5a1e0c7d4b2f9e81"
    assert event.vendor_status == vendor_status
    assert event.status == dict(SPEC_ROWS + EXTENSION_ROWS)[vendor_status]
    assert event.occurred_at == dt.datetime.fromisoformat(occurred_at)
    assert event.event_id.startswith("evt_7f3c2a91b0d4e6")
    # *.deleted bodies carry no metadata: matched by printer id only.
    assert event.reference == ("" if vendor_status == "postcard.deleted" else "pc:7:4242:0")


def test_it_takes_the_piece_id_from_the_body_when_reference_id_is_absent():
    data = json.loads((FIXTURES / "postcard_delivered.json").read_text())
    del data["reference_id"]
    [event] = LobPrinter({}).parse_webhook(json.dumps(data).encode())
    assert event.printer_id == "psc_5a1e0c7d4b2f9e81"


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        ((FIXTURES / "malformed_no_event_type.json").read_bytes(), "not a Lob event"),
        (b"{not json", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "not a Lob event"),
        (b'{"id": "evt_1", "event_type": {"id": "postcard.created"}, "body": {}}', "names no postcard"),
        (b'{"id": "evt_1", "event_type": "postcard.created", "reference_id": "psc_1"}', "not a Lob event"),
    ],
)
def test_it_raises_a_clear_value_error_on_a_malformed_body(raw, match):
    with pytest.raises(ValueError, match=match):
        LobPrinter({}).parse_webhook(raw)


# ---------------------------------------------------------------- signature matrix
BODY = (FIXTURES / "postcard_delivered.json").read_bytes()


def signed(body: bytes = BODY, *, secret: str = SECRET, ts: str | None = None) -> dict[str, str]:
    ts = ts if ts is not None else str(int(time.time() * 1000))
    return {"Lob-Signature": hmac_sha256_hex(secret, ts.encode() + b"." + body), "Lob-Signature-Timestamp": ts}


def verifier(secret: str = SECRET, tolerance: int = 300) -> LobPrinter:
    return LobPrinter({"webhook_secret": secret, "webhook_tolerance_s": tolerance})


@pytest.mark.parametrize("per_second", [1000, 1])
def test_it_accepts_a_valid_signature_with_a_millisecond_or_second_timestamp(per_second):
    # The timestamp is taken when the test runs: one taken at collection goes stale in a long suite.
    ts = str(int(time.time() * per_second))
    verifier().verify_webhook(WebhookRequest(BODY, signed(ts=ts)))


def test_it_reads_lob_headers_in_any_case():
    headers = {k.lower(): v for k, v in signed().items()}
    verifier().verify_webhook(WebhookRequest(BODY, headers))


# A day either way, not minutes: the values are computed when the tests are
# collected, and a long run (a busy machine, the whole suite) must not bring
# them back inside the tolerance before this test runs.
def _stale() -> str:
    return str(int((time.time() - 86400) * 1000))


def _future() -> str:
    return str(int((time.time() + 86400) * 1000))


@pytest.mark.parametrize(
    ("body", "headers", "secret"),
    [
        pytest.param(BODY.replace(b"Delivered", b"Returned"), signed(), SECRET, id="tampered-body"),
        pytest.param(BODY, signed(secret="someone-else"), SECRET, id="wrong-secret"),
        pytest.param(BODY, {"Lob-Signature-Timestamp": signed()["Lob-Signature-Timestamp"]}, SECRET, id="no-signature"),
        pytest.param(BODY, {"Lob-Signature": signed()["Lob-Signature"]}, SECRET, id="no-timestamp"),
        pytest.param(BODY, {}, SECRET, id="no-headers"),
        pytest.param(BODY, {**signed(), "Lob-Signature": "t=1,v1=abc"}, SECRET, id="malformed-signature"),
        pytest.param(BODY, {**signed(), "Lob-Signature-Timestamp": "2026-03-01T00:00:00Z"}, SECRET, id="malformed-ts"),
        pytest.param(BODY, signed(ts=_stale()), SECRET, id="stale"),
        pytest.param(BODY, signed(ts=_future()), SECRET, id="future"),
        pytest.param(json.dumps(json.loads(BODY)).encode(), signed(), SECRET, id="re-serialized-json"),
        pytest.param(BODY, signed(), "", id="missing-secret"),
    ],
)
def test_it_rejects_every_inauthentic_webhook_with_a_verification_error_only(body, headers, secret):
    with pytest.raises(WebhookVerificationError):
        verifier(secret).verify_webhook(WebhookRequest(body, headers))


def test_a_missing_secret_is_reported_in_plain_words():
    with pytest.raises(WebhookVerificationError) as refused:
        verifier("").verify_webhook(WebhookRequest(BODY, signed()))
    assert str(refused.value) == "no Lob webhook secret is configured: refusing every webhook"


def test_the_timestamp_window_comes_from_settings():
    headers = signed(ts=str(int((time.time() - 60) * 1000)))
    verifier(tolerance=300).verify_webhook(WebhookRequest(BODY, headers))
    with pytest.raises(WebhookVerificationError, match="stale"):
        verifier(tolerance=30).verify_webhook(WebhookRequest(BODY, headers))


def test_the_simulator_fires_webhooks_lob_accepts_and_parses(lob, simulator):
    piece = lob.submit(make_request())
    deliveries = simulator.fire_webhooks(
        "unused", simulator.timeline("lob", piece.printer_id), send=lambda *a: (200, "")
    )
    statuses = []
    for delivery in deliveries:
        lob.verify_webhook(WebhookRequest(delivery.body, delivery.headers))
        [event] = lob.parse_webhook(delivery.body)
        assert (event.printer_id, event.reference) == (piece.printer_id, "pc:7:4242:0")
        statuses.append(event.status)
    assert statuses[0] == S.PRODUCING
    assert statuses[-1] == S.DELIVERED
    assert S.UNKNOWN not in statuses


def test_it_falls_back_to_the_event_time_when_the_scan_time_is_unreadable():
    data = json.loads((FIXTURES / "postcard_delivered.json").read_text())
    data["body"]["tracking_events"][-1]["time"] = "last tuesday"
    [event] = LobPrinter({}).parse_webhook(json.dumps(data).encode())
    assert event.occurred_at == dt.datetime.fromisoformat(data["date_created"])


# ---------------------------------------------------------------- review regressions
def test_it_refuses_caller_metadata_that_would_replace_the_reference_lookup_searches_by():
    from printers.lob.client import metadata_for

    with pytest.raises(PrinterError, match="reference") as info:
        metadata_for(make_request(metadata={"reference": "pc:7:1:0", "recipient_id": "4242"}))
    assert info.value.permanent
    # Repeating our own reference is harmless.
    assert metadata_for(make_request(metadata={"reference": "pc:7:4242:0"})) == {"reference": "pc:7:4242:0"}


def test_a_5xx_after_the_piece_was_created_is_transient_and_the_same_key_makes_no_second_piece(lob, simulator):
    simulator.inject("lob", Fault.status_after_create(503, method="POST"))
    with pytest.raises(PrinterError) as info:
        lob.submit(make_request())
    assert (info.value.permanent, info.value.status_code) == (False, 503)
    assert simulator.physical_pieces("lob") == 1  # Lob created it anyway
    replay = lob.submit(make_request())
    assert replay.printer_id == simulator.pieces("lob")[0].id
    assert simulator.physical_pieces("lob") == 1


@pytest.mark.parametrize("tolerance", ["abc", "nan", "inf", "-5"])
def test_it_refuses_webhooks_with_a_verification_error_when_the_tolerance_setting_is_not_a_positive_number(
    tolerance,
):
    body = b'{"id": "evt_1"}'
    stamp = str(int((time.time() - 86_400 * 365) * 1000))  # a year old
    headers = {"Lob-Signature-Timestamp": stamp, "Lob-Signature": hmac_sha256_hex(SECRET, stamp.encode() + b"." + body)}
    printer = LobPrinter({"webhook_secret": SECRET, "webhook_tolerance_s": tolerance})
    with pytest.raises(WebhookVerificationError, match="tolerance"):
        printer.verify_webhook(WebhookRequest(body, headers))


def test_the_simulator_catches_a_client_that_mints_a_new_key_per_retry(lob, simulator):
    # The point of "5xx after create": a retry under a fresh key prints a second piece.
    simulator.inject("lob", Fault.status_after_create(500, method="POST"))
    with pytest.raises(PrinterError):
        lob.submit(make_request())
    lob.submit(make_request(idempotency_key="a-fresh-key"))
    assert simulator.physical_pieces("lob") == 2


@pytest.mark.parametrize("value", ['say "hi"', "back\\slash"])
def test_the_simulator_refuses_metadata_with_quotes_or_backslashes_as_lob_does(simulator, value):
    response = httpx.post(
        simulator.url("lob") + "/postcards",
        json={**LobPrinter({}).payload(make_request()), "metadata": {"note": value}},
        auth=("test_lob_key", ""),
    )
    assert response.status_code == 422
    assert simulator.physical_pieces("lob") == 0


def test_a_409_on_create_is_an_unknown_outcome_not_a_failure(lob, simulator):
    # Lob answers 409 while a request under the same key is still in flight.
    simulator.inject("lob", 409)
    with pytest.raises(PrinterError) as info:
        lob.submit(make_request())
    assert (info.value.permanent, info.value.status_code) == (False, 409)
    assert lob.submit(make_request()).printer_id.startswith("psc_")
    assert simulator.physical_pieces("lob") == 1
