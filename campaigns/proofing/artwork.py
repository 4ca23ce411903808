"""The built-in front artwork: a steaming cup on a table on a snowy winter night.

Drawn in code with Pillow so the demo needs no image files and every card
size gets artwork made for it (not a stretched picture).  The right part of
the card holds the scene (the cup, its warm glow and steam); the left part
stays a calm night sky, where the renderer sets the headline.

Pillow draws shapes without anti-aliasing, so the detailed pieces (the cup,
the crystal snowflakes) are drawn on small layers at a multiple of the final
size and scaled down; soft things (glow, bokeh, steam) are drawn small and
blurred.  The result is cached per size: a campaign pays for it once per
process.
"""

from __future__ import annotations

import math
import random
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFilter

RGB = tuple[int, int, int]

# The palette: a winter night outside, coffee and firelight inside.
SKY = ((16, 26, 52), (38, 42, 84), (78, 52, 86))
TABLE_TOP, TABLE_BOTTOM = (120, 72, 44), (58, 32, 20)
TABLE_EDGE = (166, 110, 70)
CUP, CUP_SHADE = (246, 238, 226), (196, 178, 160)
BAND = (178, 52, 42)
COFFEE, CREMA = (70, 38, 20), (150, 98, 56)
GLOW = (255, 176, 92)
BOKEH = ((255, 190, 110), (255, 140, 90), (250, 214, 150), (214, 120, 150))
SUPERSAMPLE = 3


def builtin_front(width: int, height: int) -> Image.Image:
    """The front artwork at ``width`` x ``height`` (RGB).  Cached: callers
    must copy it before drawing on it."""
    return _builtin_front(width, height)


@lru_cache(maxsize=4)
def _builtin_front(width: int, height: int) -> Image.Image:
    u = height / 100  # one unit: 1% of the card's height
    table_y = round(height * 0.80)
    canvas = _vertical_gradient(width, height, [(0.0, SKY[0]), (0.55, SKY[1]), (0.80, SKY[2])])
    canvas = canvas.convert("RGBA")
    rng = random.Random(1225)  # fixed: every render of a size is identical

    cup_cx = round(width - max(height * 0.5, width * 0.22))
    cup_w = round(28 * u)
    cup_bottom = table_y + round(3 * u)

    _bokeh(canvas, rng, u, table_y)
    _glow(canvas, cup_cx, table_y - round(16 * u), round(60 * u), GLOW, 150)
    _snow_dots(canvas, rng, u)
    _table(canvas, table_y, u)
    _cup(canvas, cup_cx, cup_bottom, cup_w, u)
    _steam(canvas, cup_cx, cup_bottom - round(31 * u), u, rng)
    # Crystal flakes frame the headline area (left, middle) and keep off the cup.
    text_zone = (0.0, height * 0.22, width * 0.56, height * 0.78)
    brand_zone = (0.0, 0.0, width * 0.5, height * 0.15)
    cup_zone = (cup_cx - 24 * u, height * 0.3, width, table_y)
    _snowflakes(canvas, rng, u, avoid=[cup_zone, text_zone, brand_zone])
    _vignette(canvas)
    return canvas.convert("RGB")


# ---------------------------------------------------------------------- building blocks
def _mix(a: RGB, b: RGB, t: float) -> RGB:
    return (round(a[0] + (b[0] - a[0]) * t), round(a[1] + (b[1] - a[1]) * t), round(a[2] + (b[2] - a[2]) * t))


def _vertical_gradient(width: int, height: int, stops: list[tuple[float, RGB]]) -> Image.Image:
    """A gradient through ``stops`` (position 0..1, colour), built as one
    column and stretched: cheap at any size."""
    column = []
    for y in range(height):
        t = y / max(1, height - 1)
        before = max((s for s in stops if s[0] <= t), key=lambda s: s[0], default=stops[0])
        after = min((s for s in stops if s[0] >= t), key=lambda s: s[0], default=stops[-1])
        span = after[0] - before[0]
        column.append(_mix(before[1], after[1], 0 if span <= 0 else (t - before[0]) / span))
    strip = Image.new("RGB", (1, height))
    strip.putdata(column)
    return strip.resize((width, height), Image.Resampling.NEAREST)


def _glow(canvas: Image.Image, cx: int, cy: int, radius: int, color: RGB, strength: int) -> None:
    """A soft round light: the radial gradient Pillow ships, inverted and scaled."""
    # Pillow's radial gradient is 0 at the centre, 181 at the edge midpoints
    # and 255 in the corners: rescale so the light ends at the inscribed circle.
    mask = Image.radial_gradient("L").resize((2 * radius, 2 * radius), Image.Resampling.BILINEAR)
    mask = mask.point(lambda v: round(max(0.0, 1 - v / 181) ** 1.8 * strength))
    layer = Image.new("RGBA", mask.size, (*color, 0))
    layer.putalpha(mask)
    canvas.alpha_composite(layer, (cx - radius, cy - radius))


def _bokeh(canvas: Image.Image, rng: random.Random, u: float, horizon: int) -> None:
    """Out-of-focus town lights behind the table: drawn at a quarter size and blurred."""
    scale = 4
    small = Image.new("RGBA", (canvas.width // scale, canvas.height // scale), (0, 0, 0, 0))
    draw = ImageDraw.Draw(small)
    for _ in range(34):
        x = rng.uniform(0.05, 1.0) * small.width
        y = rng.uniform(0.45, 0.78) * canvas.height / scale
        r = rng.uniform(1.2, 4.2) * u / scale
        color = rng.choice(BOKEH)
        alpha = round(rng.uniform(40, 110) * (y * scale / horizon))
        draw.ellipse((x - r, y - r, x + r, y + r), fill=(*color, alpha))
    small = small.filter(ImageFilter.GaussianBlur(0.35 * u / scale))
    canvas.alpha_composite(small.resize(canvas.size, Image.Resampling.BICUBIC))


def _snow_dots(canvas: Image.Image, rng: random.Random, u: float) -> None:
    """Falling snow: many soft dots, larger and brighter nearer the viewer."""
    scale = 2
    small = Image.new("RGBA", (canvas.width // scale, canvas.height // scale), (0, 0, 0, 0))
    draw = ImageDraw.Draw(small)
    for _ in range(round(canvas.width * canvas.height / (u * u) / 45)):
        x, y = rng.uniform(0, small.width), rng.uniform(0, small.height * 0.82)
        near = rng.random() ** 2
        r = (0.18 + near * 0.55) * u / scale
        draw.ellipse((x - r, y - r, x + r, y + r), fill=(255, 255, 255, round(90 + near * 150)))
    small = small.filter(ImageFilter.GaussianBlur(0.08 * u / scale))
    canvas.alpha_composite(small.resize(canvas.size, Image.Resampling.BICUBIC))


def _snowflakes(
    canvas: Image.Image, rng: random.Random, u: float, avoid: list[tuple[float, float, float, float]]
) -> None:
    """A few crystal snowflakes (six arms with side branches), kept out of the ``avoid`` boxes."""
    placed = 0
    attempts = 0
    spots: list[tuple[float, float, float]] = []
    while placed < 12 and attempts < 2000:
        attempts += 1
        size = rng.uniform(2.6, 6.5) * u
        x, y = rng.uniform(size, canvas.width - size), rng.uniform(size, canvas.height * 0.74)
        if any(b[0] - size < x < b[2] + size and b[1] - size < y < b[3] + size for b in avoid):
            continue
        if any(math.hypot(x - sx, y - sy) < size + sr + 3 * u for sx, sy, sr in spots):
            continue
        spots.append((x, y, size))
        flake = _flake(round(size), rng.uniform(0, math.pi / 3), round(rng.uniform(110, 215)))
        canvas.alpha_composite(flake, (round(x - size), round(y - size)))
        placed += 1


def _flake(radius: int, turn: float, alpha: int) -> Image.Image:
    s = SUPERSAMPLE
    big = Image.new("RGBA", (2 * radius * s, 2 * radius * s), (0, 0, 0, 0))
    draw = ImageDraw.Draw(big)
    c = radius * s
    width = max(2, round(radius * s / 11))
    color = (255, 255, 255, alpha)
    for arm in range(6):
        angle = turn + arm * math.pi / 3
        tip = (c + math.cos(angle) * c * 0.96, c + math.sin(angle) * c * 0.96)
        draw.line((c, c, *tip), fill=color, width=width)
        for at, length in ((0.45, 0.30), (0.7, 0.22)):
            base = (c + math.cos(angle) * c * at, c + math.sin(angle) * c * at)
            for side in (-1, 1):
                branch = angle + side * math.pi / 4
                end = (base[0] + math.cos(branch) * c * length, base[1] + math.sin(branch) * c * length)
                draw.line((*base, *end), fill=color, width=width)
    draw.ellipse((c - width * 1.5, c - width * 1.5, c + width * 1.5, c + width * 1.5), fill=color)
    return big.resize((2 * radius, 2 * radius), Image.Resampling.LANCZOS)


def _table(canvas: Image.Image, top: int, u: float) -> None:
    """A wooden table: a warm gradient, a lit front edge and faint grain."""
    height = canvas.height - top
    wood = _vertical_gradient(canvas.width, height, [(0.0, TABLE_TOP), (1.0, TABLE_BOTTOM)]).convert("RGBA")
    draw = ImageDraw.Draw(wood)
    rng = random.Random(7)
    for _ in range(18):
        y = rng.uniform(0.1, 1.0) * height
        draw.line((0, y, canvas.width, y + rng.uniform(-u, u)), fill=(40, 20, 10, rng.randint(18, 40)), width=2)
    draw.rectangle((0, 0, canvas.width, max(2, round(0.45 * u))), fill=(*TABLE_EDGE, 255))
    canvas.alpha_composite(wood, (0, top))


def _cup(canvas: Image.Image, cx: int, bottom: int, width: int, u: float) -> None:
    """A cream mug with a red band on a saucer, drawn large and scaled down."""
    s = SUPERSAMPLE
    w = width * s
    body_h = round(width * 0.95) * s
    handle_w = round(w * 0.36)
    saucer_w = round(w * 1.7)
    layer_w, layer_h = saucer_w + 2 * s, body_h + round(w * 0.45)
    layer = Image.new("RGBA", (layer_w, layer_h), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    mid = layer_w // 2
    rim_h = round(w * 0.22)
    top = rim_h // 2 + s
    base_y = top + body_h

    # Saucer with a soft shadow under it.
    sh = round(w * 0.16)
    draw.ellipse((mid - saucer_w // 2, base_y - sh // 2, mid + saucer_w // 2, base_y + sh), fill=(30, 16, 8, 110))
    draw.ellipse((mid - saucer_w // 2 + s, base_y - sh, mid + saucer_w // 2 - s, base_y + sh // 2), fill=CUP_SHADE)
    draw.ellipse(
        (mid - saucer_w // 2 + 4 * s, base_y - sh - 2 * s, mid + saucer_w // 2 - 4 * s, base_y + sh // 2 - 5 * s),
        fill=CUP,
    )

    # Handle: a thick ring on the right, behind the body.
    hx0 = mid + w // 2 - handle_w // 2
    draw.ellipse(
        (hx0, top + body_h * 0.18, hx0 + handle_w * 1.5, top + body_h * 0.68),
        outline=CUP,
        width=round(w * 0.085),
    )
    draw.ellipse(
        (
            hx0 + w * 0.03,
            top + body_h * 0.18 + w * 0.03,
            hx0 + handle_w * 1.5 - w * 0.03,
            top + body_h * 0.68 - w * 0.03,
        ),
        outline=CUP_SHADE,
        width=round(w * 0.03),
    )

    # Body: slightly tapered, rounded at the bottom.
    taper = round(w * 0.06)
    body = [
        (mid - w // 2, top),
        (mid + w // 2, top),
        (mid + w // 2 - taper, base_y - round(w * 0.12)),
        (mid - w // 2 + taper, base_y - round(w * 0.12)),
    ]
    draw.polygon(body, fill=CUP)
    draw.ellipse(
        (mid - w // 2 + taper, base_y - round(w * 0.24), mid + w // 2 - taper, base_y - round(w * 0.005)), fill=CUP
    )
    # Shading: darker to the right, clipped to the body.
    body_mask = Image.new("L", layer.size, 0)
    ImageDraw.Draw(body_mask).polygon(body, fill=255)
    ImageDraw.Draw(body_mask).ellipse(
        (mid - w // 2 + taper, base_y - round(w * 0.24), mid + w // 2 - taper, base_y - round(w * 0.005)), fill=255
    )
    ramp = Image.linear_gradient("L").rotate(90).transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    ramp = ramp.resize((w, layer_h)).point(lambda v: max(0, v - 90) * 150 // 165)
    shade = Image.new("L", layer.size, 0)
    shade.paste(ramp, (mid - w // 2, 0))
    shade = Image.composite(shade, Image.new("L", layer.size, 0), body_mask)
    layer.paste((*CUP_SHADE, 255), (0, 0), shade)

    # The red band with a row of small white dots.
    band_top, band_h = top + round(body_h * 0.34), round(body_h * 0.2)
    band_mask = Image.new("L", layer.size, 0)
    ImageDraw.Draw(band_mask).rectangle((0, band_top, layer_w, band_top + band_h), fill=255)
    band_mask = Image.composite(band_mask, Image.new("L", layer.size, 0), body_mask)
    layer.paste((*BAND, 255), (0, 0), band_mask)
    dots = 7
    for i in range(dots):
        x = mid - w * 0.36 + i * w * 0.72 / (dots - 1)
        y = band_top + band_h / 2
        r = band_h * 0.12
        draw.ellipse((x - r, y - r, x + r, y + r), fill=(250, 240, 230, 235))

    # Rim and the coffee in it.
    draw.ellipse((mid - w // 2, top - rim_h // 2, mid + w // 2, top + rim_h // 2), fill=CUP)
    inset = round(w * 0.05)
    draw.ellipse(
        (mid - w // 2 + inset, top - rim_h // 2 + inset // 2, mid + w // 2 - inset, top + rim_h // 2 - inset // 2),
        fill=CREMA,
    )
    inner = round(w * 0.1)
    draw.ellipse(
        (mid - w // 2 + inner, top - rim_h // 2 + inner // 2, mid + w // 2 - inner, top + rim_h // 2 - inner // 3),
        fill=COFFEE,
    )

    small = layer.resize((layer_w // s, layer_h // s), Image.Resampling.LANCZOS)
    canvas.alpha_composite(small, (cx - small.width // 2, bottom - (base_y // s)))


def _steam(canvas: Image.Image, cx: int, top: int, u: float, rng: random.Random) -> None:
    """Three rising wisps: sine curves that fade as they climb, blurred."""
    height = round(30 * u)
    width = round(24 * u)
    layer = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    for i, offset in enumerate((-0.28, 0.0, 0.28)):
        phase = rng.uniform(0, math.pi)
        points = []
        steps = 60
        for step in range(steps + 1):
            t = step / steps
            x = width / 2 + offset * width * (1 - 0.4 * t) + math.sin(phase + t * 2.6 * math.pi) * 2.2 * u * (0.4 + t)
            y = height * (1 - t)
            points.append((x, y))
        for step in range(steps):
            alpha = round(225 * (1 - step / steps) ** 1.1)
            line_w = max(2, round((1.9 - 0.7 * step / steps) * u * (1.0 if i == 1 else 0.8)))
            draw.line((*points[step], *points[step + 1]), fill=(255, 250, 240, alpha), width=line_w)
    layer = layer.filter(ImageFilter.GaussianBlur(0.35 * u))
    canvas.alpha_composite(layer, (cx - width // 2, top - height))


def _vignette(canvas: Image.Image) -> None:
    """Darken the corners a little, so the eye stays on the card."""
    mask = Image.radial_gradient("L").resize(canvas.size, Image.Resampling.BILINEAR)
    mask = mask.point(lambda v: max(0, v - 150) * 120 // 105)
    shadow = Image.new("RGBA", canvas.size, (8, 8, 20, 0))
    shadow.putalpha(mask)
    canvas.alpha_composite(shadow)
