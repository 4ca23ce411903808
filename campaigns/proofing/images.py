"""Proof images for people: full size and thumbnails, read through Django's
storage API.  Proofs carry names and addresses, so they are served only to
staff by the admin (never from a public media URL)."""

from __future__ import annotations

import io

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from PIL import Image

THUMB_PX = 480


def proof_bytes(name: str, *, thumb: bool = False) -> tuple[bytes, str]:
    """The image stored under ``name`` (or its thumbnail, made once and kept
    beside it) and its content type.  Raises FileNotFoundError."""
    if not name or not default_storage.exists(name):
        raise FileNotFoundError(name)
    if not thumb:
        with default_storage.open(name, "rb") as f:
            data = f.read()
        return data, "image/png" if name.endswith(".png") else "image/jpeg"
    thumb_name = f"{name.rsplit('.', 1)[0]}.thumb.jpg"
    if not default_storage.exists(thumb_name):
        with default_storage.open(name, "rb") as f, Image.open(f) as source:
            image = source.convert("RGB")
            image.thumbnail((THUMB_PX, THUMB_PX))
            out = io.BytesIO()
            image.save(out, "JPEG", quality=85)
        thumb_name = default_storage.save(thumb_name, ContentFile(out.getvalue()))
    with default_storage.open(thumb_name, "rb") as f:
        return f.read(), "image/jpeg"
