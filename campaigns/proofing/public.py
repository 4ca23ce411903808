"""Proof images for printers: signed, expiring URLs.

A printer fetches the front and back of a card from a URL (Lob: "a remote URL
on a fast host").  Proofs carry names and addresses, so they are not public
media: each URL carries a signature of the storage name (Django's signing,
keyed by SECRET_KEY) and stops working after ``MAX_AGE``.  The web process
serves the image from ``default_storage`` (``proof_image_view``), whatever
storage backs it: on several machines that storage must be shared
(docs/deploy.md, "Files").
"""

from __future__ import annotations

import datetime as dt
import functools

from django.conf import settings
from django.core import signing
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpRequest
from django.http.response import HttpResponseBase
from django.urls import get_script_prefix, get_urlconf, reverse

SALT = "campaigns.proof-image"
MAX_AGE = dt.timedelta(days=30)
# Stands for the token while the view's path is reversed once (see _path_around).
_MARK = "proof-token-mark"


def proof_public_url(name: str) -> str:
    """An absolute URL a printer can fetch ``name`` from, for ``MAX_AGE``.

    The same URL as ``reverse("proof_image", args=[signing.dumps(name,
    salt=SALT, compress=True)])``, built with the signer and the view's path
    made once: the mailing stage builds two per card, and reversing the URL
    and making a signer (which reads the settings) each time cost ~60 µs a
    link, now ~30 µs (bench/README.md, "Proof links made once per key")."""
    if not name:
        return ""
    base = str(getattr(settings, "PUBLIC_BASE_URL", "") or "").rstrip("/")
    token = _signer(settings.SECRET_KEY).sign_object(name, compress=True)
    head, tail = _path_around(get_urlconf() or settings.ROOT_URLCONF, get_script_prefix())
    return f"{base}{head}{token}{tail}"


@functools.lru_cache(maxsize=4)
def _signer(secret_key: str) -> signing.TimestampSigner:
    """``signing.dumps``'s signer for this key (signing uses the current key only)."""
    return signing.TimestampSigner(key=secret_key, salt=SALT)


@functools.lru_cache(maxsize=16)
def _path_around(urlconf: str, script_prefix: str) -> tuple[str, str]:
    """The proof view's path before and after its token, for this URLconf and
    prefix.  A token (URL-safe base64, ``.`` and ``:``) is never quoted by
    ``reverse``, so putting it between the two gives what ``reverse`` would."""
    head, _, tail = reverse("proof_image", args=[_MARK], urlconf=urlconf).partition(_MARK)
    return head, tail


def proof_image_view(request: HttpRequest, token: str) -> HttpResponseBase:
    try:
        name = signing.loads(token, salt=SALT, max_age=MAX_AGE)
    except signing.BadSignature:
        raise Http404("This link is not valid (or has expired).") from None
    if not isinstance(name, str) or not default_storage.exists(name):
        raise Http404("No such image.")
    content_type = "image/png" if name.endswith(".png") else "image/jpeg"
    return FileResponse(default_storage.open(name, "rb"), content_type=content_type)
