"""The signed links printers fetch proofs from (campaigns/proofing/public.py)."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from django.core import signing
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.test import override_settings
from django.urls import reverse, set_script_prefix

from campaigns.proofing.public import SALT, proof_public_url

pytestmark = pytest.mark.django_db


def _token(url: str) -> str:
    return urlsplit(url).path.rstrip("/").rsplit("/", 1)[1]


@pytest.fixture
def stored() -> Iterator[str]:
    name = default_storage.save("proofs/links/front.png", ContentFile(b"\x89PNG-not-really"))
    yield name
    default_storage.delete(name)


def test_a_link_serves_its_image(client, stored: str) -> None:
    url = proof_public_url(stored)
    response = client.get(urlsplit(url).path)
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert b"".join(response.streaming_content) == b"\x89PNG-not-really"


@override_settings(PUBLIC_BASE_URL="https://cards.example.com/")
def test_the_link_is_what_signing_and_reverse_would_make(stored: str) -> None:
    url = proof_public_url(stored)
    token = _token(url)
    assert url == "https://cards.example.com" + reverse("proof_image", args=[token])
    assert signing.loads(token, salt=SALT) == stored
    # The same signer as signing.dumps: the same token, but for the timestamp.
    assert token.split(":")[0] == signing.dumps(stored, salt=SALT, compress=True).split(":")[0]


def test_a_new_secret_key_signs_new_links(stored: str) -> None:
    old = _token(proof_public_url(stored))
    with override_settings(SECRET_KEY="another-secret-key-for-this-test-only-0123456789"):
        new = _token(proof_public_url(stored))
        assert signing.loads(new, salt=SALT) == stored
        with pytest.raises(signing.BadSignature):
            signing.loads(old, salt=SALT)
    with pytest.raises(signing.BadSignature):
        signing.loads(new, salt=SALT)


def test_a_script_prefix_is_in_the_link(stored: str) -> None:
    set_script_prefix("/postcards/")
    try:
        path = urlsplit(proof_public_url(stored)).path
        assert path.startswith("/postcards/proofs/")
        assert path == reverse("proof_image", args=[_token(path)])
    finally:
        set_script_prefix("/")
    assert urlsplit(proof_public_url(stored)).path.startswith("/proofs/")


def test_a_tampered_link_is_not_found(client, stored: str) -> None:
    path = urlsplit(proof_public_url(stored)).path
    token = _token(path)
    assert client.get(path.replace(token, token[:-2] + ("AA" if token[-2:] != "AA" else "BB"))).status_code == 404


def test_an_empty_name_has_no_link() -> None:
    assert proof_public_url("") == ""
