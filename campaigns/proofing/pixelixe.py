"""Pixelixe image automation (v2) as a proof renderer (shared/docs/vendors.md §5).

Per side, one ``POST {base_url}/graphic/automation/v2`` with a JSON body:
``api_key`` (Pixelixe takes it in the body, not a header), ``document_uid``
(the design's Pixelixe document for that side), ``format: "json"`` (answer
with a hosted URL), ``image_type: "png"``, ``custom_field`` (our recipient id,
echoed back) and ``modifications``: one text element per field, by ``name``
(the same list for both sides; a document uses the names it has):

    headline, subline, message, offer (hidden when the recipient has no
    code), discount_code, address (the address block, one line each),
    sender (the return address).

A 200 is not a success by itself: the body's ``status`` must be "success";
``"error"`` means Pixelixe refused the document or its data (a broken
design: ``creative``).  Then ``GET image_url`` (no key on that request) and
check with Pillow that it is an image of the card's full-bleed size; Pixelixe
documents need not carry 300 DPI in the file, so a PNG without it is written
again with it (the printers check).

Errors (the cause picks the spec's message, base.py):

==========================================  ==========  =========
what                                        cause       permanent
==========================================  ==========  =========
network, timeout, 408, 429, 5xx             proof       no (retry_after from the headers)
401 / 403 (the API key)                     proof       yes
other 4xx, or a 200 with status "error"     creative    yes
a 200 we cannot read                        proof       no
the image is not an image of the right size proof       yes
==========================================  ==========  =========

The key travels in the body, so no message here ever quotes a request body,
and anything Pixelixe says back is scrubbed of the key before it is shown.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

import httpx
from PIL import Image, UnidentifiedImageError

from campaigns.proofing.base import DPI, ProofError, ProofJob, RenderedProof, pixel_size
from campaigns.proofing.local import resolve_texts
from common import http as outbound

DEFAULT_BASE_URL = "https://studio.pixelixe.com/api"
DEFAULT_TIMEOUT_S = 30.0
CREDENTIAL_STATUSES = frozenset({401, 403})
SERVICE = "Pixelixe"


class PixelixeRenderer:
    name = "pixelixe"

    def __init__(self, api_key: str, base_url: str = DEFAULT_BASE_URL, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self.api_key = api_key
        self.url = f"{(base_url or DEFAULT_BASE_URL).rstrip('/')}/graphic/automation/v2"
        self.timeout = timeout

    @classmethod
    def from_settings(cls, conf: Mapping[str, Any]) -> PixelixeRenderer:
        return cls(
            api_key=str(conf.get("api_key") or ""),
            base_url=str(conf.get("base_url") or DEFAULT_BASE_URL),
            timeout=float(conf.get("timeout_s") or DEFAULT_TIMEOUT_S),
        )

    def __repr__(self) -> str:  # never the key
        return f"PixelixeRenderer(url={self.url!r})"

    # ------------------------------------------------------------------ render
    def render(self, job: ProofJob) -> RenderedProof:
        if not self.api_key:
            raise ProofError("Pixelixe has no API key configured (PIXELIXE_API_KEY)", cause="proof", permanent=True)
        modifications = self.modifications(job)
        front = self._side(job, "front", job.design.pixelixe_front_uid, modifications)
        back = self._side(job, "back", job.design.pixelixe_back_uid, modifications)
        return RenderedProof(front=front, back=back, content_type="image/png")

    @staticmethod
    def modifications(job: ProofJob) -> list[dict[str, Any]]:
        """The text elements we fill, by name (the merge rules of the local renderer apply)."""
        texts = resolve_texts(job)
        fields = {
            "headline": texts.headline,
            "subline": texts.subline,
            "message": texts.message,
            "offer": texts.offer,
            "discount_code": str(job.merge.get("discount_code") or ""),
            "address": "\n".join(job.address_lines),
            "sender": "\n".join(job.sender_lines),
        }
        out: list[dict[str, Any]] = []
        for name, text in fields.items():
            item: dict[str, Any] = {"name": name, "type": "text", "text": text}
            if name in ("offer", "discount_code") and not text:
                item["visible"] = False  # no code: hide the coupon instead of printing an empty one
            out.append(item)
        return out

    def _side(self, job: ProofJob, side: str, document_uid: str, modifications: list[dict[str, Any]]) -> bytes:
        if not document_uid:
            raise ProofError(f"the design has no Pixelixe document for the {side}", cause="creative", permanent=True)
        body = {
            "api_key": self.api_key,
            "document_uid": document_uid,
            "format": "json",
            "image_type": "png",
            "custom_field": str(job.recipient_id),
            "modifications": modifications,
        }
        response = self._send("POST", self.url, json=body, what=f"the {side}")
        image_url = self._image_url(response, side)
        image = self._send("GET", image_url, what=f"the {side} image")
        return self._checked_image(image.content, job.size, side)

    # ------------------------------------------------------------------ HTTP
    def _send(self, method: str, url: str, *, what: str, json: Any = None) -> httpx.Response:
        """One request through the seam; every failure becomes a :class:`ProofError` (see the module table)."""
        try:
            response = outbound.request(method, url, json=json, timeout=self.timeout, error=ProofError, service=SERVICE)
        except ProofError as exc:
            raise ProofError(
                self._scrub(f"Pixelixe, {what}: {exc.message}"), cause="proof", permanent=exc.permanent
            ) from None
        status = response.status_code
        if 200 <= status < 300:
            return response
        detail = self._scrub(_vendor_message(response))
        text = f"Pixelixe answered HTTP {status} for {what}" + (f": {detail}" if detail else "")
        if status in outbound.TRANSIENT_STATUSES or status >= 500:
            raise ProofError(
                text,
                cause="proof",
                permanent=False,
                status_code=status,
                retry_after=outbound.retry_after_seconds(response.headers),
            )
        if status in CREDENTIAL_STATUSES:
            raise ProofError(
                f"Pixelixe refused our API key (HTTP {status}) for {what}: check PIXELIXE_API_KEY",
                cause="proof",
                permanent=True,
                status_code=status,
            )
        if method == "GET":  # the image link Pixelixe just gave us is gone: nothing to fix in the design
            raise ProofError(text, cause="proof", permanent=True, status_code=status)
        raise ProofError(text, cause="creative", permanent=True, status_code=status)

    def _image_url(self, response: httpx.Response, side: str) -> str:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise ProofError(f"Pixelixe answered the {side} with a body we cannot read", cause="proof")
        if body.get("status") != "success":
            detail = self._scrub(str(body.get("message") or body.get("status") or "no status"))[:300]
            raise ProofError(
                f"Pixelixe could not render the {side} of this design: {detail}", cause="creative", permanent=True
            )
        image_url = body.get("image_url")
        if not isinstance(image_url, str) or not image_url:
            raise ProofError(f"Pixelixe answered the {side} without an image link", cause="proof")
        return image_url

    def _checked_image(self, content: bytes, size: str, side: str) -> bytes:
        """``content`` when it is a PNG of the card's size with 300 DPI; a PNG
        of another DPI is written again with 300; anything else is refused."""
        expected = pixel_size(size)
        try:
            with Image.open(io.BytesIO(content)) as image:
                actual, kind, dpi = image.size, image.format, image.info.get("dpi")
                if actual == expected and kind == "PNG" and _is_300(dpi):
                    image.verify()
                    return content
                if actual == expected:
                    image.load()
                    out = io.BytesIO()
                    image.save(out, "PNG", dpi=(DPI, DPI))
                    return out.getvalue()
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError):
            raise ProofError(f"Pixelixe's {side} is not an image we can read", cause="proof", permanent=True) from None
        raise ProofError(
            f"Pixelixe's {side} is {actual[0]}x{actual[1]} pixels; a {size} card needs {expected[0]}x{expected[1]} "
            "(set the Pixelixe document to the card's full-bleed size at 300 DPI)",
            cause="proof",
            permanent=True,
        )

    def _scrub(self, text: str) -> str:
        return text.replace(self.api_key, "[key]") if self.api_key else text


def _is_300(dpi: object) -> bool:
    if not isinstance(dpi, tuple) or len(dpi) != 2:
        return False
    return all(abs(float(value) - DPI) < 0.5 for value in dpi)


def _vendor_message(response: httpx.Response) -> str:
    """Pixelixe's ``message`` (or the usual envelopes), short; never our request."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])[:300]
    message, _code = outbound.error_message(response)
    return message[:300]
