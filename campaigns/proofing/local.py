"""The local proof renderers: Pillow draws the postcard in-process.

``LocalProofRenderer`` makes the real thing: two RGB PNGs at the printers'
full-bleed size (:func:`~campaigns.proofing.base.pixel_size`) with 300 DPI
written in the file (Lob refuses images without it: ``invalid_image_dpi``).
``FastProofRenderer`` only resolves the merge texts, so it fails the same way
on a broken design but makes no image: it exists for benchmarks of the
pipeline, not for mail.

Layout (docs/proofing.md has the picture in words):

- Front: the design's background (scaled to cover the card, centre-cropped)
  or the built-in artwork; the organization's name small at the top left,
  the headline large over the left half, a short rule, the subline.
- Back: the background or plain paper; the return address top left; the
  message in the left column; the offer as a coupon under it; the
  recipient's address in the printer's ink-free zone at the lower right
  (Lob's postcard spec, help.lob.com "Postcards" design specs: 3.2835" x
  2.375" on a 4x6, 4" x 2.375" on larger cards, 0.275" from the right and
  0.25" from the bottom edge, bleed included).  The zone is painted white
  and nothing but the address goes in it.

Speed: everything that does not depend on the recipient (the decoded,
scaled background, the artwork, the white address box, the fonts) is built
once per design version and size and kept in a small in-process LRU; a
proof copies the two bases, draws its text and encodes the PNGs.

Merge fields: texts use ``{first_name}`` style names from ``job.merge``.  A
name the merge data does not have, or a brace error, is a broken design
(``creative``, permanent).  A name the recipient has no value for fails the
headline, subline and message the same way (printing "Hello !" is worse
than not mailing); the offer is left out instead, because a recipient
without a discount code still gets a good card.
"""

from __future__ import annotations

import io
import string
import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import IO, Literal

from django.core.exceptions import SuspiciousOperation
from django.core.files.storage import default_storage
from PIL import Image, ImageColor, ImageDraw, ImageFilter, ImageFont, ImageOps

from campaigns.proofing.artwork import builtin_front
from campaigns.proofing.base import DPI, TRIM_IN, ProofDesign, ProofError, ProofJob, RenderedProof, pixel_size

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont
RGB = tuple[int, int, int]

# ---------------------------------------------------------------------- fonts
FONT_DIRS = (
    Path("/usr/share/fonts/truetype/dejavu"),
    Path("/usr/share/fonts/dejavu"),
    Path("/usr/share/fonts/TTF"),
    Path("/usr/local/share/fonts"),
    Path("/Library/Fonts"),
)
# Per role, the files to try in order; the last resort is Pillow's own font.
FONT_FILES: dict[str, tuple[str, ...]] = {
    "headline": ("DejaVuSerif-Bold.ttf", "DejaVuSans-Bold.ttf"),
    "body": ("DejaVuSans.ttf",),
    "bold": ("DejaVuSans-Bold.ttf", "DejaVuSans.ttf"),
    "message": ("DejaVuSerif-Italic.ttf", "DejaVuSerif.ttf", "DejaVuSans.ttf"),
    "caps": ("DejaVuSansCondensed-Bold.ttf", "DejaVuSans-Bold.ttf"),
}


@lru_cache(maxsize=16)
def font_path(role: str) -> str | None:
    """The first installed TrueType file for ``role``, or None (use Pillow's)."""
    for name in FONT_FILES[role]:
        for folder in FONT_DIRS:
            if (folder / name).is_file():
                return str(folder / name)
    return None


@lru_cache(maxsize=512)
def font(role: str, size: int) -> Font:
    """A loaded font; cached, since loading a face costs more than drawing a line."""
    path = font_path(role)
    if path is None:
        return ImageFont.load_default(size=size)
    return ImageFont.truetype(path, size)


# Characters that draw nothing of their own: combining marks, joiners and
# variation selectors (parts of emoji sequences), controls, spaces.
_NO_GLYPH_CATEGORIES = frozenset({"Mn", "Me", "Cf", "Cc", "Zs", "Zl", "Zp"})
# A code point no font here has: what the font draws for a missing glyph.
_SURELY_MISSING = "\U0010fffd"


@lru_cache(maxsize=32)
def _probe(path: str) -> tuple[ImageFont.FreeTypeFont, tuple[tuple[int, int], bytes]]:
    """The face at a probing size, and what it draws for a missing glyph."""
    face = ImageFont.truetype(path, 40)
    mask = face.getmask(_SURELY_MISSING)
    return face, (mask.size, bytes(mask))


@lru_cache(maxsize=8192)
def _has_glyph(path: str, ch: str) -> bool:
    face, notdef = _probe(path)
    mask = face.getmask(ch)
    return (mask.size, bytes(mask)) != notdef


def undrawable(text: str, role: str) -> list[str]:
    """The characters of ``text`` that ``role``'s font has no glyph for: on
    the card they would print as empty boxes (a name in Chinese or Hebrew,
    an emoji: the DejaVu fonts draw Latin, Greek and Cyrillic)."""
    path = font_path(role)
    if path is None:
        return []
    seen: list[str] = []
    for ch in text:
        if ch in seen or unicodedata.category(ch) in _NO_GLYPH_CATEGORIES:
            continue
        if not _has_glyph(path, ch):
            seen.append(ch)
    return seen


# The font role each of the design's texts is drawn with (see _draw_front
# and _draw_back): what the glyph checks test them against.
TEXT_ROLES = {"headline": "headline", "subline": "body", "message": "message", "offer": "bold"}


def check_drawable(text: str, role: str, where: str) -> None:
    """Refuse ``text`` when ``role``'s font cannot draw it (``ProofError``,
    creative and permanent): printing it would put boxes on the card."""
    missing = undrawable(text, role)
    if missing:
        shown = ", ".join(f"\u201c{ch}\u201d" for ch in missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise ProofError(
            f"The {where} has characters the card's font cannot print ({shown}): they would come out as empty "
            "boxes. Write it with other characters (a name in Latin letters, no emoji)",
            cause="creative",
            permanent=True,
        )


# ---------------------------------------------------------------------- merge fields
_FORMATTER = string.Formatter()


@dataclass(frozen=True)
class MergedTexts:
    """The design's texts filled in for one recipient (``offer`` may be empty)."""

    headline: str
    subline: str
    message: str
    offer: str


def merge_text(template: str, merge: Mapping[str, str], where: str) -> tuple[str, tuple[str, ...]]:
    """``template`` with its ``{name}`` fields filled from ``merge``, and the
    names whose value is empty.  ``{name|fallback}`` says what to write when
    the recipient has no value (``{first_name|friend}``; ``{company|}``
    writes nothing), so such a field never counts as empty.  Anything but a
    plain known name is a broken design: ``ProofError`` (creative, permanent)."""
    try:
        parts = list(_FORMATTER.parse(template))
    except ValueError:
        # Python's own words ("Single '{' encountered in format string") are
        # not for the person who wrote the card.
        raise ProofError(
            f"The {where} has a brace that opens or closes nothing: "
            "write merge fields as {first_name} and a literal brace as {{ or }}",
            cause="creative",
            permanent=True,
        ) from None
    out: list[str] = []
    empty: list[str] = []
    for literal, field_name, spec, conversion in parts:
        out.append(literal)
        if field_name is None:
            continue
        field_name, bar, fallback = field_name.partition("|")
        if not field_name.isidentifier() or spec or conversion:
            raise ProofError(
                f"The {where} has a merge field we cannot fill: {{{field_name}"
                f"{'!' + conversion if conversion else ''}{':' + spec if spec else ''}}}; "
                "use a plain name such as {first_name}",
                cause="creative",
                permanent=True,
            )
        if field_name not in merge:
            known = ", ".join("{" + name + "}" for name in sorted(merge))
            raise ProofError(
                f"The {where} uses an unknown merge field {{{field_name}}}; the fields are {known}",
                cause="creative",
                permanent=True,
            )
        value = " ".join(str(merge[field_name]).split()) or " ".join(fallback.split())
        if not value and not bar:
            empty.append(field_name)
        out.append(value)
    return "".join(out).strip(), tuple(empty)


def resolve_texts(job: ProofJob) -> MergedTexts:
    """Every text of the design filled for ``job``'s recipient (see the module doc for the rules)."""
    design = job.design
    filled: dict[str, str] = {}
    for attr, where in (("headline", "headline"), ("subline", "subline"), ("message", "message")):
        text, empty = merge_text(getattr(design, attr), job.merge, f"design's {where}")
        if empty:
            raise ProofError(
                f"The design's {where} uses {{{empty[0]}}}, but this recipient has no {empty[0].replace('_', ' ')}",
                cause="creative",
                permanent=True,
            )
        filled[attr] = text
    offer, empty = merge_text(design.offer, job.merge, "design's offer")
    return MergedTexts(offer="" if empty else offer, **filled)


# ---------------------------------------------------------------------- layout
@dataclass(frozen=True)
class Box:
    """A rectangle in pixels: left, top, right, bottom (right and bottom exclusive)."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    def tuple(self) -> tuple[int, int, int, int]:
        return (self.x0, self.y0, self.x1, self.y1)


def _box(x0: float, y0: float, x1: float, y1: float) -> Box:
    """A box from inches measured from the file's top-left corner (bleed included)."""
    return Box(round(x0 * DPI), round(y0 * DPI), round(x1 * DPI), round(y1 * DPI))


# Lob's ink-free zone (help.lob.com, Postcards design specs), in inches.
INK_FREE_W_IN = {"4x6": 3.2835, "6x9": 4.0, "6x11": 4.0}
INK_FREE_H_IN = 2.375
INK_FREE_RIGHT_IN = 0.275
INK_FREE_BOTTOM_IN = 0.25
# Text stays this far inside the file's edge: 1/8" bleed + 1/4" (Lob asks 1/8" of safe zone; we give twice).
MARGIN_IN = 0.375


@dataclass(frozen=True)
class FrontLayout:
    brand: Box
    headline: Box
    rule_y: int
    subline: Box


@dataclass(frozen=True)
class BackLayout:
    sender: Box
    message: Box
    offer: Box
    divider_x: int
    address_zone: Box  # the printer's ink-free zone: white, address only
    address: Box  # where the address lines go, inside the zone


def _inches(size: str) -> tuple[float, float]:
    if size not in TRIM_IN:
        raise ProofError(f"unknown card size {size!r}", cause="proof", permanent=True)
    width, height = TRIM_IN[size]
    return width + 0.25, height + 0.25


@lru_cache(maxsize=8)
def front_layout(size: str) -> FrontLayout:
    w, h = _inches(size)
    m = MARGIN_IN
    text_right = w * 0.54
    return FrontLayout(
        brand=_box(m, m, text_right, m + 0.32),
        headline=_box(m, h * 0.20, text_right, h * 0.585),
        rule_y=round(h * 0.615 * DPI),
        subline=_box(m, h * 0.645, text_right, h * 0.775),
    )


@lru_cache(maxsize=8)
def back_layout(size: str) -> BackLayout:
    w, h = _inches(size)
    m = MARGIN_IN
    zone_x1, zone_y1 = w - INK_FREE_RIGHT_IN, h - INK_FREE_BOTTOM_IN
    zone_x0, zone_y0 = zone_x1 - INK_FREE_W_IN[size], zone_y1 - INK_FREE_H_IN
    column_right = min(w / 2, zone_x0) - 0.25
    return BackLayout(
        sender=_box(m, m, column_right, m + 0.8),
        message=_box(m, m + 1.0, column_right, h - m - 1.05),
        offer=_box(m, h - m - 0.9, column_right, h - m),
        divider_x=round((column_right + 0.125) * DPI),
        address_zone=_box(zone_x0, zone_y0, zone_x1, zone_y1),
        # Lob prints postage and its own marks in the zone's top part: the
        # address sits in the lower part, like theirs.
        address=_box(zone_x0 + 0.2, zone_y0 + 0.85, zone_x1 - 0.2, zone_y1 - 0.25),
    )


# ---------------------------------------------------------------------- fitting text
@dataclass(frozen=True)
class Fitted:
    """Text set in a box: the font and size chosen, the lines, their pitch."""

    font: Font
    role: str
    size: int
    lines: tuple[str, ...]
    line_height: int  # baseline to baseline
    text_height: int  # ascent + descent of one line

    @property
    def height(self) -> int:
        return self.line_height * (len(self.lines) - 1) + self.text_height if self.lines else 0


def _metrics(f: Font) -> tuple[int, int]:
    if isinstance(f, ImageFont.FreeTypeFont):
        ascent, descent = f.getmetrics()
        return ascent, descent
    _left, top, _right, bottom = f.getbbox("Ag")
    return int(-top if top < 0 else 0) + int(bottom), 0


def _width(f: Font, text: str) -> float:
    """The ink's width when drawn at an origin shifted by :func:`_lead`:
    italics overhang their advance on both sides, so the advance alone is not enough."""
    if not text:
        return 0.0
    left, _top, right, _bottom = f.getbbox(text, anchor="la")
    return float(max(right, f.getlength(text)) - min(0, left))


def _lead(f: Font, text: str) -> int:
    """How far right to start ``text`` so no ink falls left of the box (a negative left bearing)."""
    return max(0, -int(f.getbbox(text, anchor="la")[0])) if text else 0


def _wrap(text: str, f: Font, width: int) -> list[str]:
    """Greedy word wrap by measured width; a word longer than the line is cut."""
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        current = ""
        for word in paragraph.split():
            candidate = f"{current} {word}" if current else word
            if _width(f, candidate) <= width:
                current = candidate
                continue
            if current:
                lines.append(current)
            while _width(f, word) > width and len(word) > 1:
                cut = max(1, _fits_prefix(f, word, width))
                lines.append(word[:cut])
                word = word[cut:]
            current = word
        lines.append(current)
    while lines and not lines[-1]:
        lines.pop()
    return lines


def _fits_prefix(f: Font, text: str, width: float) -> int:
    """How many leading characters of ``text`` fit in ``width``."""
    low, high = 0, len(text)
    while low < high:
        mid = (low + high + 1) // 2
        if _width(f, text[:mid]) <= width:
            low = mid
        else:
            high = mid - 1
    return low


def _ellipsize(f: Font, text: str, width: float) -> str:
    if _width(f, text) <= width:
        return text
    return text[: _fits_prefix(f, text, width - _width(f, "…"))].rstrip() + "…"


def fit_text(
    text: str,
    role: str,
    box: Box,
    *,
    max_size: int,
    min_size: int,
    spacing: float = 1.18,
    max_lines: int | None = None,
    wrap: bool = True,
) -> Fitted:
    """The largest size (from ``max_size`` down to ``min_size``) at which
    ``text`` fits ``box``; at the smallest size what still does not fit is
    cut with an ellipsis, so text never leaves its box."""
    size = max_size
    while True:
        f = font(role, size)
        ascent, descent = _metrics(f)
        line_height = max(1, round((ascent + descent) * spacing))
        lines = _wrap(text, f, box.width) if wrap else [line for line in text.splitlines() if line.strip()]
        too_wide = not wrap and any(_width(f, line) > box.width for line in lines)
        too_many = max_lines is not None and len(lines) > max_lines
        needed = line_height * max(0, len(lines) - 1) + ascent + descent
        if (needed <= box.height and not too_wide and not too_many) or size <= min_size:
            break
        size = max(min_size, int(size * 0.92))
    room = max(1, (box.height - ascent - descent) // line_height + 1)
    limit = min(room, max_lines or room)
    if len(lines) > limit:
        lines = [*lines[: limit - 1], lines[limit - 1] + " …"]
    lines = [_ellipsize(f, line, box.width) for line in lines]
    return Fitted(
        font=f, role=role, size=size, lines=tuple(lines), line_height=line_height, text_height=ascent + descent
    )


Align = Literal["left", "center"]
VAlign = Literal["top", "middle", "bottom"]


def _origins(fitted: Fitted, box: Box, align: Align, valign: VAlign) -> Iterable[tuple[int, int, str]]:
    top = box.y0
    if valign == "middle":
        top = box.y0 + (box.height - fitted.height) // 2
    elif valign == "bottom":
        top = box.y1 - fitted.height
    for index, line in enumerate(fitted.lines):
        x = box.x0 + _lead(fitted.font, line)
        if align == "center":
            x += round((box.width - _width(fitted.font, line)) / 2)
        yield x, top + index * fitted.line_height, line


def draw_text(
    draw: ImageDraw.ImageDraw,
    fitted: Fitted,
    box: Box,
    fill: RGB,
    *,
    align: Align = "left",
    valign: VAlign = "top",
) -> None:
    for x, y, line in _origins(fitted, box, align, valign):
        draw.text((x, y), line, font=fitted.font, fill=fill, anchor="la")


def _soft_shadow(image: Image.Image, fitted: Fitted, box: Box, valign: VAlign, offset: int, blur: float) -> None:
    """A blurred dark copy of the text under it, so light type reads on any picture."""
    pad = round(blur * 3) + offset
    region = Box(
        max(0, box.x0 - pad), max(0, box.y0 - pad), min(image.width, box.x1 + pad), min(image.height, box.y1 + pad)
    )
    # Blurred at half size and scaled back: a quarter of the work, and a shadow needs no detail.
    half = (max(1, region.width // 2), max(1, region.height // 2))
    mask = Image.new("L", half, 0)
    draw = ImageDraw.Draw(mask)
    small_font = font(fitted.role, max(1, fitted.size // 2))
    for x, y, line in _origins(fitted, box, "left", valign):
        position = ((x - region.x0 + offset) / 2, (y - region.y0 + offset) / 2)
        draw.text(position, line, font=small_font, fill=170, anchor="la")
    mask = mask.filter(ImageFilter.GaussianBlur(blur / 2)).resize(
        (region.width, region.height), Image.Resampling.BILINEAR
    )
    image.paste((12, 10, 24), (region.x0, region.y0), mask)


# ---------------------------------------------------------------------- the cached bases
PAPER = (251, 247, 240)
INK = (52, 40, 32)
MUTED = (110, 96, 86)
GOLD = (242, 196, 141)
WHITE = (255, 255, 255)


class _LRU:
    """A small thread-safe LRU of decoded images.  A miss builds outside the
    LRU's lock, one thread per key: the others wait for its image instead of
    decoding the same background each (a pool of proof threads starting on
    a new design decoded it once per thread: 2.3 GB at its peak)."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._items: OrderedDict[tuple[object, ...], Image.Image] = OrderedDict()
        self._lock = threading.Lock()
        self._building: dict[tuple[object, ...], threading.Lock] = {}

    def _hit(self, key: tuple[object, ...]) -> Image.Image | None:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        return None

    def get(self, key: tuple[object, ...], build: Callable[[], Image.Image]) -> Image.Image:
        if (image := self._hit(key)) is not None:
            return image
        with self._lock:
            building = self._building.setdefault(key, threading.Lock())
        with building:
            if (image := self._hit(key)) is not None:  # built while this thread waited
                return image
            image = build()  # a failure leaves the next waiter to try
            with self._lock:
                self._items[key] = image
                self._items.move_to_end(key)
                while len(self._items) > self.maxsize:
                    self._items.popitem(last=False)
                self._building.pop(key, None)
        return image

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


# A 6x11 side is ~19 MB decoded: 12 bases is a few campaigns' worth, ~100-230 MB.
_BASES = _LRU(maxsize=12)


def clear_caches() -> None:
    """Forget the cached backgrounds (tests that rewrite a stored file under the same name)."""
    _BASES.clear()


def color(value: str, what: str) -> RGB:
    try:
        rgb = ImageColor.getrgb(value)
    except ValueError:
        raise ProofError(
            f"The design's {what} {value!r} is not a colour (use #rrggbb)", cause="creative", permanent=True
        ) from None
    return (rgb[0], rgb[1], rgb[2])


def as_print_rgb(opened: Image.Image) -> Image.Image:
    """A decoded picture as the card prints it, in RGB: turned upright as its
    EXIF orientation says (a phone's portrait photo came out sideways),
    transparent parts on white paper (they printed black), and 16-bit grey
    scaled to 8 bits (``convert`` clipped it to white)."""
    picture = ImageOps.exif_transpose(opened) or opened
    if picture.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        picture = picture.convert("I").point(lambda v: v / 256).convert("L")
    if picture.mode == "P" and "transparency" in picture.info:
        picture = picture.convert("RGBA")
    if picture.mode in ("RGBA", "LA", "RGBa", "La", "PA"):
        rgba = picture.convert("RGBA")
        paper = Image.new("RGBA", rgba.size, (*WHITE, 255))
        paper.alpha_composite(rgba)
        picture = paper
    return picture.convert("RGB")


# Errors Pillow raises on a file it cannot decode (a truncated JPEG fails only
# when its pixels are read).
UNREADABLE = (OSError, ValueError, SyntaxError, Image.DecompressionBombError, SuspiciousOperation)


# A card needs at most ~3,400 x 1,900 pixels (6x11 at 300 dpi with bleed); a
# 50-megapixel camera picture is the largest we decode (each proof worker
# keeps the decoded picture: ~150 MB at this size).
MAX_BACKGROUND_PIXELS = 50_000_000


def background_too_big(file: IO[bytes]) -> str:
    """Why the picture is refused for its size, or "" (read from its header;
    something that is no picture at all is left to the caller's own check).
    Pillow's guard (over ~179 million pixels) raises on opening, which Django
    reported as "not an image or a corrupted image"."""
    try:
        with Image.open(file) as opened:
            width, height = opened.size
    except Image.DecompressionBombError:
        size = "over 179 million pixels"
    except Exception:
        return ""
    else:
        if width * height <= MAX_BACKGROUND_PIXELS:
            return ""
        size = f"{width:,} x {height:,} pixels"
    finally:
        file.seek(0)
    return (
        f"This picture is {size}, far more than a postcard needs: scale it down to about 3,400 x 1,900 pixels "
        "(a 6x11 card at 300 dpi; smaller cards need less) and upload that."
    )


def check_background(file: IO[bytes]) -> None:
    """Decode the whole picture as the proofs will (``ValueError`` naming
    what is wrong): Django's upload check reads only the header, so a
    truncated JPEG was accepted and then failed every recipient's proof."""
    try:
        with Image.open(file) as opened:
            opened.load()
            as_print_rgb(opened)
    except UNREADABLE:
        raise ValueError(
            "This picture is damaged or cut short: it cannot be read to the end. Export it again as PNG or "
            "JPEG and upload that."
        ) from None
    finally:
        file.seek(0)


def load_background(name: str, size: tuple[int, int], side: str) -> Image.Image:
    """The stored background, decoded, scaled to cover ``size`` and centre-cropped."""
    try:
        with default_storage.open(name, "rb") as handle, Image.open(handle) as opened:
            opened.load()
            picture = as_print_rgb(opened)
    except UNREADABLE as exc:
        reason = "is missing" if isinstance(exc, FileNotFoundError) else "is not an image we can read"
        raise ProofError(
            f"The design's {side} background {reason} ({Path(name).name})", cause="creative", permanent=True
        ) from None
    return ImageOps.fit(picture, size, method=Image.Resampling.LANCZOS, centering=(0.5, 0.5))


def front_base(design: ProofDesign, size: str) -> Image.Image:
    """The front without recipient text: background or artwork.  Shared: copy before drawing."""
    dims = pixel_size(size)

    def build() -> Image.Image:
        if design.front_background:
            return load_background(design.front_background, dims, "front")
        return builtin_front(*dims)

    return _BASES.get(("front", design.version, design.front_background, size), build)


def back_base(design: ProofDesign, size: str) -> Image.Image:
    """The back without recipient text: paper, divider, ornament, the white address zone."""
    dims = pixel_size(size)
    accent = color(design.accent_color, "accent colour")

    def build() -> Image.Image:
        if design.back_background:
            image = load_background(design.back_background, dims, "back")
        else:
            image = Image.new("RGB", dims, PAPER)
        layout = back_layout(size)
        draw = ImageDraw.Draw(image)
        rule = max(2, DPI // 100)
        draw.line(
            (layout.divider_x, layout.sender.y0, layout.divider_x, layout.offer.y1),
            fill=_tint(accent, 0.55),
            width=rule,
        )
        _beans(draw, layout, accent, dims)
        zone = layout.address_zone
        draw.rectangle(zone.tuple(), fill=WHITE)
        draw.rectangle((zone.x0, zone.y0, zone.x1 - 1, zone.y1 - 1), outline=(222, 214, 204), width=2)
        return image

    return _BASES.get(("back", design.version, design.back_background, design.accent_color, size), build)


def _tint(rgb: RGB, amount: float, toward: RGB = PAPER) -> RGB:
    return (
        round(rgb[0] + (toward[0] - rgb[0]) * amount),
        round(rgb[1] + (toward[1] - rgb[1]) * amount),
        round(rgb[2] + (toward[2] - rgb[2]) * amount),
    )


def _beans(draw: ImageDraw.ImageDraw, layout: BackLayout, accent: RGB, dims: tuple[int, int]) -> None:
    """Three coffee beans above the address zone, right-aligned with it: the roaster's mark."""
    zone = layout.address_zone
    r = round(0.11 * DPI)
    y = layout.sender.y0 + r
    for index in range(3):
        cx = zone.x1 - round(0.35 * DPI) - index * round(2.3 * r)
        box = (cx - r * 0.72, y - r, cx + r * 0.72, y + r)
        draw.ellipse(box, fill=_tint(accent, 0.15 * index, WHITE))
        draw.arc(
            (cx - r * 0.45, y - r * 0.85, cx + r * 0.25, y + r * 0.85),
            start=290,
            end=70,
            fill=PAPER,
            width=max(3, r // 6),
        )


# ---------------------------------------------------------------------- the renderers
class LocalProofRenderer:
    """Real 300-DPI PNG proofs drawn with Pillow.  ``compress_level`` trades
    file size for speed (zlib 1 is several times faster than 6 and the files
    are ~20% larger)."""

    name = "local"

    def __init__(self, compress_level: int = 1) -> None:
        self.compress_level = compress_level

    def render(self, job: ProofJob) -> RenderedProof:
        front, back = self.render_images(job)
        return RenderedProof(front=self._encode(front), back=self._encode(back), content_type="image/png")

    def render_images(self, job: ProofJob) -> tuple[Image.Image, Image.Image]:
        """The two sides as Pillow images (the tests and the admin preview use them)."""
        texts = resolve_texts(job)
        for name, role in TEXT_ROLES.items():
            check_drawable(getattr(texts, name), role, f"card's {name}")
        for text, role, where in (
            (job.merge.get("organization", "").upper(), "caps", "organization's name"),
            ("\n".join(job.sender_lines), "bold", "return address"),
            ("\n".join(job.address_lines), "body", "recipient's address"),
        ):
            check_drawable(text, role, where)
        text_color = color(job.design.text_color, "text colour")
        accent = color(job.design.accent_color, "accent colour")
        front = front_base(job.design, job.size).copy()
        self._draw_front(front, job, texts, text_color)
        back = back_base(job.design, job.size).copy()
        self._draw_back(back, job, texts, accent)
        return front, back

    def _draw_front(self, image: Image.Image, job: ProofJob, texts: MergedTexts, text_color: RGB) -> None:
        layout = front_layout(job.size)
        draw = ImageDraw.Draw(image)
        h = image.height
        # Letter-spaced caps: a space between letters, three between words
        # (plain spaces: not every font draws the typographic ones).
        words = job.merge.get("organization", "").upper().split()
        brand = "   ".join(" ".join(word) for word in words)
        if brand:
            fitted = fit_text(brand, "caps", layout.brand, max_size=round(h * 0.03), min_size=12, wrap=False)
            draw_text(draw, fitted, layout.brand, GOLD)
        headline = fit_text(
            texts.headline,
            "headline",
            layout.headline,
            max_size=round(h * 0.105),
            min_size=round(h * 0.03),
            max_lines=3,
        )
        _soft_shadow(image, headline, layout.headline, "bottom", offset=max(2, h // 300), blur=h / 180)
        draw_text(draw, headline, layout.headline, text_color, valign="bottom")
        if texts.headline:
            draw.rectangle(
                (layout.headline.x0, layout.rule_y, layout.headline.x0 + round(DPI * 1.1), layout.rule_y + h // 210),
                fill=GOLD,
            )
        if texts.subline:
            subline = fit_text(
                texts.subline, "body", layout.subline, max_size=round(h * 0.04), min_size=round(h * 0.018), max_lines=3
            )
            _soft_shadow(image, subline, layout.subline, "top", offset=max(1, h // 500), blur=h / 300)
            draw_text(draw, subline, layout.subline, text_color)

    def _draw_back(self, image: Image.Image, job: ProofJob, texts: MergedTexts, accent: RGB) -> None:
        layout = back_layout(job.size)
        draw = ImageDraw.Draw(image)
        pt = DPI / 72  # pixels per typographic point
        if job.sender_lines:
            sender = fit_text("\n".join(job.sender_lines), "bold", layout.sender, max_size=round(9 * pt),
                              min_size=round(5 * pt), wrap=False, spacing=1.25)  # fmt: skip
            # Measured in bold (the widest), drawn: the first line (the sender's name) bold in the accent colour.
            regular = font("body", sender.size)
            for index, (x, y, line) in enumerate(_origins(sender, layout.sender, "left", "top")):
                draw.text((x, y), line, font=sender.font if index == 0 else regular,
                          fill=accent if index == 0 else MUTED, anchor="la")  # fmt: skip
        if texts.message:
            message = fit_text(texts.message, "message", layout.message, max_size=round(14 * pt),
                               min_size=round(7 * pt), spacing=1.3)  # fmt: skip
            draw_text(draw, message, layout.message, INK, valign="middle")
        if texts.offer:
            self._coupon(draw, layout.offer, texts.offer, accent)
        address = fit_text("\n".join(job.address_lines), "body", layout.address, max_size=round(11 * pt),
                           min_size=round(6 * pt), wrap=False, spacing=1.2)  # fmt: skip
        draw_text(draw, address, layout.address, (0, 0, 0), valign="middle")

    @staticmethod
    def _coupon(draw: ImageDraw.ImageDraw, box: Box, offer: str, accent: RGB) -> None:
        """The offer in a dashed, tinted box: it should look like something to cut out and bring in."""
        draw.rounded_rectangle(box.tuple(), radius=round(0.08 * DPI), fill=_tint(accent, 0.88))
        dash, gap, width = round(0.08 * DPI), round(0.05 * DPI), max(3, DPI // 75)
        inset = width
        edges = (
            ((box.x0 + inset, box.y0 + inset), (box.x1 - inset, box.y0 + inset)),
            ((box.x0 + inset, box.y1 - inset), (box.x1 - inset, box.y1 - inset)),
            ((box.x0 + inset, box.y0 + inset), (box.x0 + inset, box.y1 - inset)),
            ((box.x1 - inset, box.y0 + inset), (box.x1 - inset, box.y1 - inset)),
        )
        for (ax, ay), (bx, by) in edges:
            length = max(abs(bx - ax), abs(by - ay))
            step = 0
            while step < length:
                end = min(length, step + dash)
                if ax == bx:
                    draw.line((ax, ay + step, ax, ay + end), fill=accent, width=width)
                else:
                    draw.line((ax + step, ay, ax + end, ay), fill=accent, width=width)
                step += dash + gap
        pad = round(0.14 * DPI)
        inner = Box(box.x0 + pad, box.y0 + pad, box.x1 - pad, box.y1 - pad)
        fitted = fit_text(offer, "bold", inner, max_size=round(13 * DPI / 72), min_size=round(6 * DPI / 72),
                          max_lines=2)  # fmt: skip
        draw_text(draw, fitted, inner, accent, align="center", valign="middle")

    def _encode(self, image: Image.Image) -> bytes:
        out = io.BytesIO()
        try:
            image.save(out, "PNG", dpi=(DPI, DPI), compress_level=self.compress_level)
        except (OSError, ValueError) as exc:
            raise ProofError(f"Could not encode the proof image: {exc}", cause="proof", permanent=True) from exc
        return out.getvalue()


class FastProofRenderer:
    """The benchmark backend: resolves the texts (so a broken design fails
    exactly as with the local renderer) and draws nothing.  Its proofs are
    empty; never use it for a campaign that mails."""

    name = "fast"

    def render(self, job: ProofJob) -> RenderedProof:
        resolve_texts(job)
        color(job.design.text_color, "text colour")
        color(job.design.accent_color, "accent colour")
        return RenderedProof(front=b"", back=b"")
