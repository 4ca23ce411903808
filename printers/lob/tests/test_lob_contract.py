"""Our Lob client's requests, as the simulator captured them, validated against Lob's published OpenAPI spec.

The spec lives outside the project (``../shared/vendor-examples/lob/lob-api-bundled.yml``); CI always has it,
elsewhere the module skips with a clear message.  This is the only test that reads ``../shared``.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.conf import settings
from openapi_core import Config, OpenAPI
from openapi_core.datatypes import RequestParameters
from werkzeug.datastructures import Headers, ImmutableMultiDict

from printers.base import Address
from printers.registry import get_printer
from printers.simulator.core import CapturedRequest
from printers.testing import make_request

LOB_HOST = "https://api.lob.com"


def spec_path() -> Path:
    return Path(settings.BASE_DIR).parent / "shared/vendor-examples/lob/lob-api-bundled.yml"


@pytest.fixture(scope="module")
def lob_api() -> OpenAPI:
    path = spec_path()
    if not path.exists():
        pytest.skip(f"Lob's OpenAPI spec is not at {path}: contract test skipped (CI always has it)")
    # The bundled spec has a malformed response entry (/accounts) that the spec
    # validator rejects; only the spec's self-check is off, request validation is full.
    return OpenAPI.from_file_path(str(path), config=Config(spec_validator_cls=None))


@dataclass
class OpenAPIRequest:
    """A captured request in the shape openapi-core reads, re-hosted on Lob's server URL."""

    method: str
    path: str
    body: bytes | None
    content_type: str
    parameters: RequestParameters
    host_url: str = LOB_HOST
    full_url_pattern: str = field(init=False)

    def __post_init__(self) -> None:
        self.full_url_pattern = self.host_url + self.path

    @classmethod
    def from_captured(cls, captured: CapturedRequest) -> OpenAPIRequest:
        query = [(name, value) for name, values in captured.query.items() for value in values]
        return cls(
            method=captured.method.lower(),
            path=captured.path,
            body=captured.body or None,
            content_type=captured.headers.get("content-type", ""),
            parameters=RequestParameters(
                query=ImmutableMultiDict(query), header=Headers(captured.headers), cookie=ImmutableMultiDict(), path={}
            ),
        )


def validate_all(lob_api: OpenAPI, captured: list[CapturedRequest]) -> None:
    assert captured, "the client sent nothing"
    for request in captured:
        lob_api.validate_request(OpenAPIRequest.from_captured(request))


def test_our_create_requests_match_lobs_contract(lob_api, simulator):
    lob = get_printer("lob")
    lob.submit(make_request())
    lob.submit(
        make_request(
            idempotency_key="k-2",
            reference="pc:7:4243:0",
            to=Address(name="", company="Acme Corp", address1="1 Main St", city="Austin", state="TX", zip="73301-0001"),
            size="6x11",
            mail_date=dt.datetime.now(dt.UTC).date() + dt.timedelta(days=90),
        )
    )
    validate_all(lob_api, simulator.captured("lob", "POST"))


def test_our_lookup_and_cancel_requests_match_lobs_contract(lob_api, simulator):
    lob = get_printer("lob")
    created = lob.submit(make_request())
    lob.lookup("pc:7:4242:0")
    lob.cancel(created.printer_id)
    validate_all(lob_api, simulator.captured("lob", "GET") + simulator.captured("lob", "DELETE"))


def test_the_contract_check_catches_a_drifted_request(lob_api, simulator):
    get_printer("lob").submit(make_request())
    [captured] = simulator.captured("lob", "POST")
    body = json.loads(captured.body)
    del body["use_type"]
    body["size"] = "A6"
    drifted = CapturedRequest(
        captured.vendor, captured.method, captured.path, captured.query, captured.headers, json.dumps(body).encode()
    )
    with pytest.raises(Exception, match="validation error"):
        lob_api.validate_request(OpenAPIRequest.from_captured(drifted))
