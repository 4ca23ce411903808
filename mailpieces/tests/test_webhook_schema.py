"""Schemathesis over the served OpenAPI schema, for the webhook endpoints.

The schema is loaded the way a client sees it, from ``/api/schema/`` through the
WSGI application (drf-spectacular serves it to anyone: its SERVE_PERMISSIONS
default is AllowAny, so no staff login is needed here).  Two runs per endpoint:

- every default check over what Schemathesis generates (examples, coverage and
  fuzzing phases, positive and negative data, other methods): nothing it sends
  is signed, so every answer must be a documented 4xx, never a 5xx;
- the generated bodies again, this time signed as the printer signs them and
  sent as those exact bytes: each must be accepted (200) and stored, and the
  answer must match the schema.

Deterministic (fixed seed, derandomized, no example database) and small.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.config import SchemathesisConfig
from schemathesis.core import NotSet

from config.wsgi import application
from mailpieces.models import InboundWebhook

# printers_on: the endpoint tests' autouse fixture (every printer enabled with the secrets they sign with).
from mailpieces.tests.test_webhook_endpoints import KINDS, SECRETS, printers_on, sign  # noqa: F401

SEED = 20260310
GENERATION = {"max-examples": 20, "deterministic": True, "database": "none"}
# Everything Schemathesis does by default: examples, coverage (missing headers, other
# methods, boundary values) and fuzzing, with positive and negative data.
EVERYTHING = SchemathesisConfig.from_dict({"seed": SEED, "generation": GENERATION})
# Bodies the schema allows, sent to POST only: the ones a printer could sign.
POSITIVE = SchemathesisConfig.from_dict(
    {
        "seed": SEED,
        "generation": {**GENERATION, "mode": "positive"},
        "phases": {"coverage": {"enabled": False}},
    }
)
SCHEMA_URL = "/api/schema/?format=json"

schema = schemathesis.openapi.from_wsgi(SCHEMA_URL, application, config=EVERYTHING).include(path_regex=r"^/webhooks/")
positive_schema = schemathesis.openapi.from_wsgi(SCHEMA_URL, application, config=POSITIVE).include(
    path_regex=r"^/webhooks/", method="POST"
)

QUICK = settings(
    max_examples=20,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@pytest.fixture(autouse=True)
def keep_the_test_connection() -> Iterator[None]:
    """Schemathesis calls the real WSGI handler, whose request signals close the
    database connection after each request: inside the test's transaction that
    would close it for good.  Django's test client disconnects them the same way."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


def test_the_schema_documents_every_webhook_endpoint() -> None:
    paths = schema.raw_schema["paths"]
    assert sorted(p for p in paths if p.startswith("/webhooks/")) == sorted(f"/webhooks/{k}/" for k in KINDS)
    for kind in KINDS:
        operation = paths[f"/webhooks/{kind}/"]
        assert set(operation) == {"post"}
        post = operation["post"]
        assert set(post["requestBody"]["content"]) == {"application/json", "application/x-www-form-urlencoded"}
        assert {"200", "400", "401", "404", "413", "503"} <= set(post["responses"])
        assert post["security"] == [{}]  # no session or API key: the signature authenticates
        assert "Retry-After" in post["responses"]["503"]["headers"]


@pytest.mark.django_db
@schema.parametrize()
@QUICK
def test_unsigned_generated_requests_get_documented_4xx(case: Any) -> None:
    response = case.call_and_validate()  # every default check, not_a_server_error included

    assert 400 <= response.status_code < 500, response.status_code
    assert InboundWebhook.objects.count() == 0


def _raw(case: Any) -> tuple[bytes, str]:
    """The generated body as the bytes a printer would send, and their content type."""
    if isinstance(case.body, NotSet):  # the schema lets a request have no body: b"" is signed too
        return b"", "application/json"
    if case.media_type == "application/x-www-form-urlencoded":
        fields = case.body if isinstance(case.body, dict) else {"value": case.body}
        return urlencode({str(k): json.dumps(v) for k, v in fields.items()}).encode(), case.media_type
    return json.dumps(case.body).encode(), "application/json"


@pytest.mark.django_db
@positive_schema.parametrize()
@QUICK
def test_signed_generated_bodies_are_accepted_and_stored(case: Any) -> None:
    kind = case.path.strip("/").split("/")[1]
    body, content_type = _raw(case)
    # The signature replaces whatever header values were generated (they are not a signature).
    case.headers = {**sign(kind, body), "Content-Type": content_type}

    response = case.call(data=body)
    case.validate_response(
        response,
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_headers_conformance,
            response_schema_conformance,
        ],
    )

    assert response.status_code == 200, response.content
    assert response.json()["received"] is True
    stored = [bytes(row.body) for row in InboundWebhook.objects.filter(printer=kind)]
    assert body in stored
    if kind == "stannp":
        assert InboundWebhook.objects.filter(event_id="sha256:" + hashlib.sha256(body).hexdigest()).exists()
