"""The proof renderer interface, what it is given, and the backend switch.

A renderer turns one :class:`ProofJob` (a design, the recipient's merge data
and address, the card size) into the two sides of a print-ready postcard.  It
never touches the database or storage: the proofing service
(``campaigns.proofing.service``) builds the jobs, stores the images through
Django's storage API and moves the recipients.

Sizes: the printers want full-bleed art at 300 DPI, landscape, 0.125" of bleed
on every edge (Lob's 6.25"x4.25" for a 4x6 card; vendors.md §1.2), so a 4x6
proof is 1875x1275 pixels, a 6x9 one 2775x1875 and a 6x11 one 3375x1875.

Errors: a renderer raises :class:`ProofError`, whose ``cause`` picks the
spec's message (docs/proofing.md):

- ``CREATIVE``: the creative cannot be built from this design and recipient
  (a background that is missing or not an image, a merge field the text uses
  that the recipient has no value for, the vendor refusing the template or
  its data: a 4xx).  Retrying will not help until someone fixes the design:
  ``COULD_NOT_GENERATE_CREATIVE``.
- ``PROOF``: making or fetching the image failed (the service down, 5xx,
  timeout, an answer that is not an image of the right size, Pillow failing).
  Transient ones (``permanent`` False) are retried with backoff first; when
  the budget is spent, or for a permanent one: ``FAILED_TO_MAKE_PROOF``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

from django.conf import settings

from common.http import OutboundError

DPI = 300
BLEED_IN = 0.125
# Trim size (width x height, inches, landscape) per campaign size.
TRIM_IN = {"4x6": (6.0, 4.0), "6x9": (9.0, 6.0), "6x11": (11.0, 6.0)}


def pixel_size(size: str) -> tuple[int, int]:
    """Full-bleed pixel size of a proof side at 300 DPI: (1875, 1275) for 4x6."""
    width, height = TRIM_IN[size]
    return round((width + 2 * BLEED_IN) * DPI), round((height + 2 * BLEED_IN) * DPI)


Cause = Literal["creative", "proof"]


class ProofError(OutboundError):
    """A proof could not be made.  ``cause`` says which of the spec's messages
    fits (see the module doc); ``permanent`` whether a retry could help."""

    def __init__(self, message: str, *, cause: Cause = "proof", **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.cause: Cause = cause


@dataclass(frozen=True)
class ProofDesign:
    """A snapshot of the campaign's design (``ProofTemplate``, or the built-in
    one when the campaign has none).  Backgrounds are storage names ("" = none:
    the built-in artwork on the front, plain paper on the back)."""

    version: str  # e.g. "t3.v2.4x6": template, its version, the card size
    name: str = "Built-in design"
    headline: str = "Hello {first_name|friend}!"
    subline: str = ""
    message: str = ""
    offer: str = ""
    accent_color: str = "#7a3b12"
    text_color: str = "#ffffff"
    front_background: str = ""
    back_background: str = ""
    pixelixe_front_uid: str = ""
    pixelixe_back_uid: str = ""


@dataclass(frozen=True)
class ProofJob:
    """One recipient's proof to make.

    ``merge`` holds every merge field of ``campaigns.models.MERGE_FIELDS``
    (empty strings for what the recipient lacks); texts use them as
    ``{first_name}``.  ``address_lines`` is the recipient's address block as
    the printer will print it (name, company, street lines, city line,
    country), drawn where printers put it: the lower right of the back.
    ``sender_lines`` is the return address (top left of the back)."""

    recipient_id: int
    size: str
    design: ProofDesign
    merge: Mapping[str, str]
    address_lines: tuple[str, ...]
    sender_lines: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class RenderedProof:
    """The two sides, as encoded image files (``content_type`` says which
    format), each of :func:`pixel_size` of the job's size.  The fast backend
    returns empty bytes: it makes no image."""

    front: bytes
    back: bytes
    content_type: str = "image/png"

    @property
    def extension(self) -> str:
        return {"image/png": "png", "image/jpeg": "jpg"}.get(self.content_type, "bin")


class ProofRenderer(Protocol):
    name: str

    def render(self, job: ProofJob) -> RenderedProof: ...


def get_proof_renderer() -> ProofRenderer:
    conf = dict(getattr(settings, "PROOFING", None) or {})
    backend = conf.get("backend") or "local"
    if backend == "local":
        from campaigns.proofing.local import LocalProofRenderer

        return LocalProofRenderer()
    if backend == "fast":
        from campaigns.proofing.local import FastProofRenderer

        return FastProofRenderer()
    if backend == "pixelixe":
        from campaigns.proofing.pixelixe import PixelixeRenderer

        return PixelixeRenderer.from_settings(conf)
    raise ProofError(
        f"unknown PROOFING backend {backend!r}: use 'local', 'fast' or 'pixelixe'", cause="proof", permanent=True
    )
