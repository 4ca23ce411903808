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

from django.conf import settings
from django.core import signing
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpRequest
from django.http.response import HttpResponseBase
from django.urls import reverse

SALT = "campaigns.proof-image"
MAX_AGE = dt.timedelta(days=30)


def proof_public_url(name: str) -> str:
    """An absolute URL a printer can fetch ``name`` from, for ``MAX_AGE``."""
    if not name:
        return ""
    base = str(getattr(settings, "PUBLIC_BASE_URL", "") or "").rstrip("/")
    token = signing.dumps(name, salt=SALT, compress=True)
    return f"{base}{reverse('proof_image', args=[token])}"


def proof_image_view(request: HttpRequest, token: str) -> HttpResponseBase:
    try:
        name = signing.loads(token, salt=SALT, max_age=MAX_AGE)
    except signing.BadSignature:
        raise Http404("This link is not valid (or has expired).") from None
    if not isinstance(name, str) or not default_storage.exists(name):
        raise Http404("No such image.")
    content_type = "image/png" if name.endswith(".png") else "image/jpeg"
    return FileResponse(default_storage.open(name, "rb"), content_type=content_type)
