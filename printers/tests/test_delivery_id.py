"""The inbox's dedupe key for a delivery: the vendor's id where it has one, the body's hash where not."""

from __future__ import annotations

import hashlib

import pytest

from printers.base import WebhookRequest
from printers.registry import get_printer_class


def delivery_id(kind: str, body: bytes, headers: dict[str, str] | None = None) -> str:
    return get_printer_class(kind)({}).delivery_id(WebhookRequest(body=body, headers=headers or {}))


def hashed(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


@pytest.mark.parametrize("kind", ["lob", "taylor", "sandbox"])
def test_the_events_own_id_when_the_body_has_one(kind):
    assert delivery_id(kind, b'{"id": "evt_123", "x": 1}') == "evt_123"


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[1, 2]", b'{"id": 42}', b'{"id": ""}', b'{"id": "a\\nb"}', b'{"id": "' + b"x" * 151 + b'"}'],
    ids=["not-json", "not-an-object", "number", "empty", "control-character", "too-long"],
)
def test_the_bodys_hash_when_the_id_is_missing_or_odd(body):
    assert delivery_id("lob", body) == hashed(body)


def test_stannp_has_no_event_id_so_the_same_bytes_are_one_delivery():
    body = b'{"webhook_id": 9, "event": "mailpiece_status", "mailpieces": []}'
    assert delivery_id("stannp", body) == hashed(body)
    assert delivery_id("stannp", body.replace(b"[]", b"[ ]")) != hashed(body)


@pytest.mark.parametrize("header", ["svix-id", "webhook-id", "SVIX-ID"])
def test_intelliprint_uses_the_svix_message_id_under_either_name(header):
    assert delivery_id("intelliprint", b"{}", {header: "msg_2Lz"}) == "msg_2Lz"


def test_intelliprint_without_a_message_id_falls_back_to_the_hash():
    assert delivery_id("intelliprint", b"{}") == hashed(b"{}")
