"""POST /webhooks/<printer>/: authentic deliveries are stored byte for byte, once;
everything else is refused with a 4xx and leaves no row (never a 500).

Bodies are signed here the way each vendor signs them, with the standard
library (and ``svix`` for IntelliPrint), not with the printers' own code, so a
verifier that drifted from the vendor's scheme fails these tests.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import hashlib
import hmac
import io
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from django.contrib.auth import get_user_model
from django.db import OperationalError
from django.test import Client, RequestFactory
from django.urls import reverse
from svix.webhooks import Webhook

from common.testing import race
from mailpieces.models import InboundWebhook
from mailpieces.webhooks import doorbell, inbox
from mailpieces.webhooks.views import WEBHOOK_VIEWS
from printers.testing import fixtures_dir

KINDS = ["lob", "stannp", "intelliprint", "taylor", "sandbox"]
TIMESTAMPED = ["lob", "intelliprint", "taylor", "sandbox"]  # Stannp signs no timestamp
TOLERANCE_S = 300  # set for lob/taylor/sandbox below; Svix's own window is 5 min
# The endpoint tests sign on the wall clock and the check reads it again later (Svix reads its own
# clock), so a skew of tolerance ± 1 s raced a slow CI run; the exact edges are pinned with a
# fixed clock in printers/tests/test_signing.py. 30 s is far beyond any one request's latency.
EDGE_MARGIN_S = 30

SECRETS = {
    "lob": "lob-endpoint-secret",
    "stannp": "stannp-endpoint-secret",
    "intelliprint": "whsec_" + base64.b64encode(b"intelliprint-endpoint-secret-key").decode(),
    "taylor": "taylor-endpoint-secret",
    "sandbox": "sandbox-endpoint-secret",
}
WRONG_SECRETS = {
    "lob": "not-lobs-secret",
    "stannp": "not-stannps-secret",
    "intelliprint": "whsec_" + base64.b64encode(b"somebody-elses-svix-secret-key!!").decode(),
    "taylor": "not-taylors-secret",
    "sandbox": "not-the-sandbox-secret",
}
SIGNATURE_HEADERS = {
    "lob": ["Lob-Signature", "Lob-Signature-Timestamp"],
    "stannp": ["X-Stannp-Signature"],
    "intelliprint": ["svix-id", "svix-timestamp", "svix-signature"],
    "taylor": ["X-Taylor-Signature"],
    "sandbox": ["X-Postcards-Signature"],
}
FIXTURES = [
    pytest.param(kind, path, id=f"{kind}-{path.stem}")
    for kind in KINDS
    for path in sorted(fixtures_dir(kind).glob("*.json"))
]
# One ordinary delivery per printer, for the tests that are not about the body.
SAMPLE = {
    "lob": "postcard_delivered.json",
    "stannp": "mailpiece_status_returned.json",
    "intelliprint": "letter_updated_shipping.json",
    "taylor": "status_delivered.json",
    "sandbox": "piece_status_changed.json",
}


def sample(kind: str) -> bytes:
    return (fixtures_dir(kind) / SAMPLE[kind]).read_bytes()


def _hex(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign(
    kind: str, body: bytes, *, secret: str | None = None, at: float | None = None, msg_id: str | None = None
) -> dict[str, str]:
    """The headers ``kind`` sends with ``body``, signed at ``at`` (now by default)."""
    secret = SECRETS[kind] if secret is None else secret
    when = int(time.time() if at is None else at)
    if kind == "lob":
        stamp = str(when * 1000)  # Lob's timestamps are milliseconds in practice (vendors.md §1.6)
        return {"Lob-Signature": _hex(secret, stamp.encode() + b"." + body), "Lob-Signature-Timestamp": stamp}
    if kind == "stannp":
        return {"X-Stannp-Signature": _hex(secret, body)}
    if kind == "intelliprint":
        msg_id = msg_id or "msg_" + hashlib.sha256(body).hexdigest()[:24]
        moment = dt.datetime.fromtimestamp(when, dt.UTC)
        return {
            "svix-id": msg_id,
            "svix-timestamp": str(when),
            "svix-signature": Webhook(secret).sign(msg_id, moment, body.decode()),
        }
    header = {"taylor": "X-Taylor-Signature", "sandbox": "X-Postcards-Signature"}[kind]
    return {header: f"t={when},v1={_hex(secret, f'{when}.'.encode() + body)}"}


def post(
    kind: str,
    body: bytes,
    headers: dict[str, str],
    *,
    content_type: str = "application/json",
    client: Client | None = None,
    path: str | None = None,
    **extra: Any,
) -> Any:
    return (client or Client()).post(
        path or f"/webhooks/{kind}/", data=body, content_type=content_type, headers=headers, **extra
    )


def expected_event_id(kind: str, body: bytes, headers: dict[str, str]) -> str:
    """The vendor's id for the delivery: Lob ``evt_…``, Taylor's and the sandbox's
    event id, IntelliPrint's ``svix-id``; Stannp has none (the body's hash)."""
    if kind == "intelliprint":
        return headers["svix-id"]
    if kind == "stannp":
        return "sha256:" + hashlib.sha256(body).hexdigest()
    return str(json.loads(body)["id"])


def assert_refused(response: Any, kind: str, body: bytes, *codes: int) -> None:
    assert response.status_code in (codes or (401,)), response.content
    assert InboundWebhook.objects.count() == 0
    text = response.content
    assert body not in text
    for secret in (SECRETS[kind], WRONG_SECRETS[kind]):
        assert secret.encode() not in text


@pytest.fixture(autouse=True)
def printers_on(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every printer enabled with a known secret; the doorbell rings nothing."""
    conf = copy.deepcopy(settings.PRINTERS_CONF)
    for kind in KINDS:
        conf[kind].update(enabled=True, api_key=f"test_{kind}_key", webhook_secret=SECRETS[kind])
        if kind != "intelliprint":
            conf[kind]["webhook_tolerance_s"] = TOLERANCE_S
    settings.PRINTERS_CONF = conf
    monkeypatch.setattr(doorbell, "enqueue", lambda: None)


# ---------------------------------------------------------------------------- accepted


@pytest.mark.django_db
@pytest.mark.parametrize(("kind", "path"), FIXTURES)
def test_a_signed_fixture_is_stored_byte_for_byte(kind: str, path: Path) -> None:
    body = path.read_bytes()
    headers = sign(kind, body, msg_id=f"msg_{path.stem}")

    response = post(kind, body, headers)

    assert response.status_code == 200, response.content
    assert response.json() == {"received": True, "duplicate": False}
    row = InboundWebhook.objects.get()
    assert bytes(row.body) == body
    assert row.printer == kind
    assert row.event_id == expected_event_id(kind, body, headers)
    assert row.content_type == "application/json"
    assert row.state == InboundWebhook.State.PENDING
    for name in SIGNATURE_HEADERS[kind]:  # kept, so the row can be verified again
        assert {k.lower(): v for k, v in row.headers.items()}[name.lower()] == headers[name]


def test_the_fixtures_cover_every_printer() -> None:
    assert {param.values[0] for param in FIXTURES} == set(KINDS)
    assert len(FIXTURES) >= 40


@pytest.mark.django_db
def test_the_event_ids_are_the_vendors_ids() -> None:
    for kind, want in [
        ("lob", "evt_7f3c2a91b0d4e610"),
        ("taylor", "tev_01HZX4P8C3"),
        ("sandbox", "evt_000000420c0ffee1"),
    ]:
        body = sample(kind)
        assert post(kind, body, sign(kind, body)).status_code == 200
        assert InboundWebhook.objects.get(printer=kind).event_id == want
    body = sample("intelliprint")
    assert post("intelliprint", body, sign("intelliprint", body, msg_id="msg_2Abc")).status_code == 200
    assert InboundWebhook.objects.get(printer="intelliprint").event_id == "msg_2Abc"  # not the letter id in the body
    body = sample("stannp")
    assert post("stannp", body, sign("stannp", body)).status_code == 200
    assert InboundWebhook.objects.get(printer="stannp").event_id == "sha256:" + hashlib.sha256(body).hexdigest()


@pytest.mark.django_db
@pytest.mark.parametrize("kind", KINDS)
def test_the_endpoints_are_named_webhook_kind(kind: str) -> None:
    assert reverse(f"webhook-{kind}") == f"/webhooks/{kind}/"


@pytest.mark.django_db
@pytest.mark.parametrize("kind", KINDS)
def test_a_duplicate_delivered_three_times_is_stored_once(kind: str) -> None:
    body = sample(kind)
    now = time.time()
    # A retry may be signed afresh (a new timestamp): it is still the same delivery.
    answers = [post(kind, body, sign(kind, body, at=now + i)) for i in range(3)]

    assert [a.status_code for a in answers] == [200, 200, 200]
    assert [a.json()["duplicate"] for a in answers] == [False, True, True]
    assert InboundWebhook.objects.count() == 1
    assert bytes(InboundWebhook.objects.get().body) == body


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kind", KINDS)
def test_concurrent_duplicates_are_all_answered_2xx_and_stored_once(kind: str) -> None:
    body = sample(kind)
    headers = sign(kind, body)

    def deliver() -> tuple[int, Any]:
        response = post(kind, body, headers)
        return response.status_code, response.json()

    answers = race([deliver for _ in range(6)], timeout=60)

    assert [code for code, _ in answers] == [200] * 6, answers
    assert sorted(payload["duplicate"] for _, payload in answers) == [False] + [True] * 5
    row = InboundWebhook.objects.get()
    assert bytes(row.body) == body
    assert row.event_id == expected_event_id(kind, body, headers)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("kind", "body"),
    [
        pytest.param(
            "lob", (fixtures_dir("lob") / "malformed_no_event_type.json").read_bytes(), id="lob-no-event-type"
        ),
        *[pytest.param(kind, b'{"id": "evt_x", "status": [unterminated', id=f"{kind}-not-json") for kind in KINDS],
        *[pytest.param(kind, b"[]", id=f"{kind}-json-array") for kind in KINDS],
        *[pytest.param(kind, b"", id=f"{kind}-empty") for kind in KINDS],
    ],
)
def test_a_signed_body_nobody_can_read_is_still_stored(kind: str, body: bytes) -> None:
    # Processing quarantines it later; the sender must not retry it (or pause us).
    response = post(kind, body, sign(kind, body))

    assert response.status_code == 200, response.content
    row = InboundWebhook.objects.get()
    assert bytes(row.body) == body
    assert row.event_id  # the body's hash when it names no id


@pytest.mark.django_db
def test_stannps_test_url_validation_call_gets_200() -> None:
    body = (fixtures_dir("stannp") / "test_url.json").read_bytes()
    assert json.loads(body)["event"] == "test_url"

    response = post("stannp", body, sign("stannp", body))

    assert response.status_code == 200
    assert bytes(InboundWebhook.objects.get().body) == body


def stannp_form_body(**extra: str) -> bytes:
    """A Stannp status delivery in its form encoding (piece 52000417 delivered)."""
    fields = {
        "webhook_id": "311",
        "event": "mailpiece_status",
        "created": "2026-03-20 11:00:00",
        "retries": "0",
        "mailpieces[0][id]": "52000417",
        "mailpieces[0][status]": "delivered",
    }
    return urlencode({**fields, **extra}).encode()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "content_type", ["application/x-www-form-urlencoded", "application/x-www-form-urlencoded; charset=UTF-8"]
)
def test_a_form_encoded_stannp_delivery_is_stored_with_its_content_type(content_type: str) -> None:
    body = stannp_form_body(**{"mailpieces[0][tags]": "pc:7:1042:0 & more"})

    response = post("stannp", body, sign("stannp", body), content_type=content_type)

    assert response.status_code == 200, response.content
    row = InboundWebhook.objects.get()
    assert bytes(row.body) == body  # never re-encoded from a parsed form
    assert row.content_type == content_type
    assert row.event_id == "sha256:" + hashlib.sha256(body).hexdigest()


@pytest.mark.django_db
@pytest.mark.parametrize("kind", KINDS)
def test_any_accept_header_gets_the_json_answer(kind: str) -> None:
    body = sample(kind)
    response = post(kind, body, {**sign(kind, body), "Accept": "application/xml"})

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")
    assert InboundWebhook.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("kind", KINDS)
def test_no_csrf_token_or_session_is_needed(kind: str) -> None:
    body = sample(kind)
    response = post(kind, body, sign(kind, body), client=Client(enforce_csrf_checks=True))

    assert response.status_code == 200
    assert InboundWebhook.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("kind", KINDS)
def test_a_session_cookie_brings_no_csrf_check(kind: str) -> None:
    # With DRF's SessionAuthentication on the view, a request carrying a staff
    # session would be refused 403 for want of a CSRF token.
    staff = get_user_model().objects.create_superuser("ops", "ops@example.com", "pw")
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff)
    body = sample(kind)

    assert post(kind, body, sign(kind, body), client=client).status_code == 200


# ---------------------------------------------------------------------------- refused


@pytest.mark.django_db
@pytest.mark.parametrize("kind", KINDS)
def test_a_delivery_signed_with_another_secret_is_refused(kind: str) -> None:
    body = sample(kind)
    response = post(kind, body, sign(kind, body, secret=WRONG_SECRETS[kind]))

    assert_refused(response, kind, body)
    assert response["WWW-Authenticate"]
    assert response.json() == {"detail": "webhook signature is missing, malformed, stale or does not match"}


@pytest.mark.django_db
@pytest.mark.parametrize("kind", KINDS)
def test_a_tampered_body_is_refused(kind: str) -> None:
    body = sample(kind)
    headers = sign(kind, body)
    middle = len(body) // 2
    tampered = body[:middle] + bytes([body[middle] ^ 0x01]) + body[middle + 1 :]

    assert_refused(post(kind, tampered, headers), kind, tampered)
    assert post(kind, body, headers).status_code == 200  # the same headers with the signed bytes pass


@pytest.mark.django_db
@pytest.mark.parametrize("kind", KINDS)
def test_a_body_re_serialised_from_parsed_json_is_refused(kind: str) -> None:
    raw = sample(kind)
    headers = sign(kind, raw)
    reserialised = json.dumps(json.loads(raw), separators=(",", ":")).encode()
    assert reserialised != raw
    assert json.loads(reserialised) == json.loads(raw)

    assert_refused(post(kind, reserialised, headers), kind, reserialised)


@pytest.mark.django_db
@pytest.mark.parametrize("kind", TIMESTAMPED)
@pytest.mark.parametrize("skew", [-(TOLERANCE_S + EDGE_MARGIN_S), TOLERANCE_S + EDGE_MARGIN_S], ids=["stale", "future"])
def test_a_timestamp_outside_the_tolerance_is_refused(kind: str, skew: int) -> None:
    body = sample(kind)
    assert_refused(post(kind, body, sign(kind, body, at=time.time() + skew)), kind, body)


@pytest.mark.django_db
@pytest.mark.parametrize("kind", TIMESTAMPED)
@pytest.mark.parametrize("skew", [-(TOLERANCE_S - EDGE_MARGIN_S), TOLERANCE_S - EDGE_MARGIN_S], ids=["old", "ahead"])
def test_a_timestamp_inside_the_tolerance_is_accepted(kind: str, skew: int) -> None:
    body = sample(kind)
    assert post(kind, body, sign(kind, body, at=time.time() + skew)).status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize(("kind", "missing"), [(k, h) for k in KINDS for h in [*SIGNATURE_HEADERS[k], "all"]])
def test_a_missing_signature_header_is_refused(kind: str, missing: str) -> None:
    body = sample(kind)
    headers = {k: v for k, v in sign(kind, body).items() if missing not in (k, "all")}

    assert_refused(post(kind, body, headers), kind, body)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("kind", "header", "value"),
    [
        ("lob", "Lob-Signature", "zz-not-hex"),
        ("lob", "Lob-Signature", "t=1,v1=abc"),
        ("lob", "Lob-Signature-Timestamp", "yesterday"),
        ("lob", "Lob-Signature-Timestamp", "nan"),
        ("stannp", "X-Stannp-Signature", "sha256=not-hex"),
        ("stannp", "X-Stannp-Signature", " "),
        ("intelliprint", "svix-signature", "garbage"),
        ("intelliprint", "svix-signature", "v1,!!!not-base64"),
        ("intelliprint", "svix-timestamp", "yesterday"),
        ("taylor", "X-Taylor-Signature", "garbage"),
        ("taylor", "X-Taylor-Signature", "t=,v1="),
        ("taylor", "X-Taylor-Signature", "t=1e999,v1=abc"),
        ("sandbox", "X-Postcards-Signature", "v1=abc"),
        ("sandbox", "X-Postcards-Signature", "t=abc,v1=def"),
        ("sandbox", "X-Postcards-Signature", "t=1,t=2,v1=abc"),
    ],
)
def test_a_malformed_signature_header_is_refused_never_a_500(kind: str, header: str, value: str) -> None:
    body = sample(kind)
    headers = {**sign(kind, body), header: value}

    assert_refused(post(kind, body, headers), kind, body, 400, 401)


@pytest.mark.django_db
@pytest.mark.parametrize("kind", KINDS)
def test_without_a_secret_every_delivery_is_refused(kind: str, settings: Any) -> None:
    settings.PRINTERS_CONF[kind]["webhook_secret"] = ""
    body = sample(kind)

    assert_refused(post(kind, body, sign(kind, body)), kind, body)
    assert_refused(post(kind, body, {}), kind, body)
    if kind != "intelliprint":  # svix refuses an empty key itself; an HMAC with b"" would "verify"
        assert_refused(post(kind, body, sign(kind, body, secret="")), kind, body)


@pytest.mark.django_db
@pytest.mark.parametrize("kind", KINDS)
def test_debug_mode_opens_no_back_door(kind: str, settings: Any) -> None:
    settings.DEBUG = True
    body = sample(kind)
    forged = sign(kind, body, secret=WRONG_SECRETS[kind])
    back_doors = {
        "X-Webhook-Secret": WRONG_SECRETS[kind],
        "X-Djstripe-Webhook-Secret": WRONG_SECRETS[kind],
        f"X-{kind.capitalize()}-Webhook-Secret": WRONG_SECRETS[kind],
        "X-Skip-Signature": "true",
        "X-Debug": "1",
    }
    path = f"/webhooks/{kind}/?debug=1&verify=0&secret={WRONG_SECRETS[kind]}"

    assert_refused(post(kind, body, {**forged, **back_doors}, path=path), kind, body)
    assert_refused(post(kind, body, back_doors, path=path), kind, body)


@pytest.mark.django_db
@pytest.mark.parametrize("kind", KINDS)
def test_a_logged_in_admin_is_no_signature(kind: str) -> None:
    admin = get_user_model().objects.create_superuser("ops", "ops@example.com", "pw")
    client = Client()
    client.force_login(admin)
    body = sample(kind)

    assert_refused(post(kind, body, {}, client=client), kind, body)


def _padded(kind: str, size: int) -> bytes:
    """A JSON delivery of exactly ``size`` bytes."""
    shell = json.dumps({"id": "evt_big", "pad": ""}).encode()
    return json.dumps({"id": "evt_big", "pad": "x" * (size - len(shell))}).encode()


@pytest.mark.django_db
@pytest.mark.parametrize("kind", KINDS)
def test_a_body_over_the_cap_is_refused_with_413(kind: str, settings: Any) -> None:
    settings.WEBHOOK_MAX_BODY_BYTES = 2048
    over, at_cap = _padded(kind, 2049), _padded(kind, 2048)
    assert (len(over), len(at_cap)) == (2049, 2048)

    assert_refused(post(kind, over, sign(kind, over)), kind, over, 413)
    assert post(kind, at_cap, sign(kind, at_cap)).status_code == 200
    assert bytes(InboundWebhook.objects.get().body) == at_cap


@pytest.mark.django_db
def test_the_default_cap_is_one_mebibyte(settings: Any) -> None:
    del settings.WEBHOOK_MAX_BODY_BYTES
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = None  # only our cap applies
    over = _padded("sandbox", 1024 * 1024 + 1)

    assert_refused(post("sandbox", over, sign("sandbox", over)), "sandbox", over, 413)


@pytest.mark.django_db
@pytest.mark.parametrize("kind", KINDS)
def test_a_declared_length_over_the_cap_is_refused_before_reading(kind: str, settings: Any) -> None:
    settings.WEBHOOK_MAX_BODY_BYTES = 2048
    body = sample(kind)[:100]
    # Over our cap, under Django's DATA_UPLOAD_MAX_MEMORY_SIZE (so only our check can refuse it),
    # and longer than the payload: the test client refuses a read past its 100 bytes, so
    # reading the body before checking the declared length would fail this test.
    response = post(kind, body, sign(kind, body), CONTENT_LENGTH="4096")

    assert_refused(response, kind, body, 413)


@pytest.mark.django_db
@pytest.mark.parametrize("kind", KINDS)
def test_a_body_over_djangos_upload_limit_is_refused_with_413(kind: str, settings: Any) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
    body = sample(kind)
    assert len(body) > 100

    assert_refused(post(kind, body, sign(kind, body)), kind, body, 413)


@pytest.mark.django_db
@pytest.mark.parametrize("kind", KINDS)
def test_a_printer_that_is_not_enabled_answers_404(kind: str, settings: Any) -> None:
    settings.PRINTERS_CONF[kind]["enabled"] = False
    body = sample(kind)

    assert_refused(post(kind, body, sign(kind, body)), kind, body, 404)


@pytest.mark.django_db
@pytest.mark.parametrize("kind", ["lob", "stannp", "intelliprint", "taylor"])  # the sandbox takes no key
def test_a_printer_enabled_without_an_api_key_answers_404(kind: str, settings: Any) -> None:
    settings.PRINTERS_CONF[kind]["api_key"] = ""
    body = sample(kind)

    assert_refused(post(kind, body, sign(kind, body)), kind, body, 404)


class _HungUp(io.BytesIO):
    """A request stream whose sender went away mid-body."""

    def read(self, *args: Any) -> bytes:
        raise OSError("connection reset by peer")


@pytest.mark.django_db
@pytest.mark.parametrize("kind", KINDS)
def test_a_body_that_cannot_be_read_answers_400(kind: str) -> None:
    body = sample(kind)
    request = RequestFactory().post(f"/webhooks/{kind}/", data=body, content_type="application/json")
    request._stream = _HungUp()

    response = WEBHOOK_VIEWS[kind].as_view()(request).render()

    assert_refused(response, kind, body, 400)


@pytest.mark.django_db
def test_an_unknown_printer_has_no_endpoint() -> None:
    body = sample("lob")
    assert post("lob", body, sign("lob", body), path="/webhooks/acme/").status_code == 404


@pytest.mark.django_db
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("method", ["get", "put", "patch", "delete", "options", "head"])
def test_only_post_is_allowed(kind: str, method: str) -> None:
    response = getattr(Client(), method)(f"/webhooks/{kind}/")

    assert response.status_code == 405
    assert response["Allow"] == "POST"
    assert InboundWebhook.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize("kind", KINDS)
def test_a_delivery_that_cannot_be_stored_gets_503_and_its_retry_is_stored(
    kind: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    body = sample(kind)
    headers = sign(kind, body)

    def database_down(**kwargs: Any) -> int:
        raise OperationalError("database is locked")

    with monkeypatch.context() as patch:
        patch.setattr(inbox, "_store", database_down)
        response = post(kind, body, headers)

    assert_refused(response, kind, body, 503)
    assert int(response["Retry-After"]) > 0
    assert any(r.levelname == "ERROR" and kind in r.getMessage() for r in caplog.records)
    assert post(kind, body, headers).status_code == 200  # the sender's retry
    assert InboundWebhook.objects.count() == 1


@pytest.mark.django_db
def test_a_printer_whose_settings_cannot_load_gets_503(settings: Any) -> None:
    settings.PRINTERS_CONF["taylor"]["status_map"] = {"9": "Misprinted"}  # not a mailpiece status
    body = sample("taylor")

    response = post("taylor", body, sign("taylor", body))

    assert_refused(response, "taylor", body, 503)
    assert response["Retry-After"]
