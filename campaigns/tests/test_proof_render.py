"""Proof images: the local Pillow renderer, the fast one, and the Pixelixe client against a local stub."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import replace

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from PIL import Image, ImageChops

from campaigns.proofing.base import ProofDesign, ProofError, ProofJob, pixel_size
from campaigns.proofing.local import (
    Box,
    FastProofRenderer,
    LocalProofRenderer,
    back_layout,
    clear_caches,
    front_layout,
)
from campaigns.proofing.pixelixe import PixelixeRenderer
from campaigns.proofing.pixelixe_stub import PixelixeHandler
from printers.simulator import Fault, Simulator

DESIGN = ProofDesign(
    version="test.v1",
    headline="Hello {first_name}!",
    subline="We saved you a seat by the window.",
    message="It has been a while, {first_name}. Come back for a cup on us this winter.",
    offer="Show code {discount_code} for {discount_value} off",
    pixelixe_front_uid="demo-front-4x6",
    pixelixe_back_uid="demo-back-4x6",
)
MERGE = {
    "first_name": "Ada",
    "last_name": "Lovelace",
    "full_name": "Ada Lovelace",
    "company": "",
    "city": "London",
    "discount_code": "WARM-1234",
    "discount_value": "20%",
    "organization": "Demo Coffee Roasters",
}
SECRET_KEY = "pxl-sk-VERY-SECRET-0042"


def job(size: str = "4x6", design: ProofDesign = DESIGN, address=("Ada Lovelace", "12 St James's Sq"), **merge):
    return ProofJob(
        recipient_id=7,
        size=size,
        design=design,
        merge={**MERGE, **merge},
        address_lines=(*address, "London SW1Y 4JH"),
        sender_lines=("Demo Coffee Roasters", "210 Roastery Lane", "Seattle, WA 98101"),
    )


def images(proof_job: ProofJob) -> tuple[Image.Image, Image.Image]:
    return LocalProofRenderer().render_images(proof_job)


def diff_box(a: Image.Image, b: Image.Image) -> tuple[int, int, int, int] | None:
    return ImageChops.difference(a, b).getbbox()


def inside(bbox: tuple[int, int, int, int], box: Box, pad: int = 0) -> bool:
    return bbox[0] >= box.x0 - pad and bbox[1] >= box.y0 - pad and bbox[2] <= box.x1 + pad and bbox[3] <= box.y1 + pad


# ---------------------------------------------------------------- size and DPI
@pytest.mark.parametrize("size", ["4x6", "6x9", "6x11"])
def test_every_size_has_the_full_bleed_pixel_size_and_300_dpi_in_the_file(size):
    proof = LocalProofRenderer().render(job(size, design=replace(DESIGN, version=f"size.{size}")))
    for side in (proof.front, proof.back):
        with Image.open(io.BytesIO(side)) as image:
            assert image.format == "PNG"
            assert image.mode == "RGB"
            assert image.size == pixel_size(size)
            assert image.info["dpi"] == pytest.approx((300, 300), abs=0.01)
    assert pixel_size("4x6") == (1875, 1275)


# ---------------------------------------------------------------- personalization shows
def test_the_front_carries_the_recipients_name_in_the_headline_area():
    with_name, _ = images(job())
    without_name, _ = images(job(design=replace(DESIGN, headline="Hello !")))
    other_name, _ = images(job(first_name="Bartholomew"))
    changed = diff_box(with_name, without_name)
    assert changed is not None
    # Only the headline (and its soft shadow, which spills a little) changed.
    assert inside(changed, front_layout("4x6").headline, pad=30)
    assert diff_box(with_name, other_name) is not None


def test_an_empty_name_the_headline_uses_is_a_creative_error_not_a_hello_comma():
    with pytest.raises(ProofError) as info:
        images(job(first_name="  "))
    assert (info.value.cause, info.value.permanent) == ("creative", True)
    assert "{first_name}" in info.value.message


def test_the_address_goes_in_the_ink_free_zone_and_nothing_else_of_the_back_changes():
    layout = back_layout("4x6")
    _, ada = images(job())
    _, bob = images(job(address=("Bob Brown", "1 Other Road")))
    changed = diff_box(ada, bob)
    assert changed is not None
    assert inside(changed, layout.address)
    # The zone is white around the address: nothing of the artwork in it.
    zone = ada.crop(layout.address_zone.tuple())
    corner = zone.crop((4, 4, zone.width - 4, 40))
    assert corner.getextrema() == ((255, 255), (255, 255), (255, 255))


def test_a_different_recipient_changes_only_the_zones_that_hold_merge_text():
    layout = back_layout("4x6")
    _, ada = images(job())
    _, bob = images(job(first_name="Bob", discount_code="WARM-9999", address=("Bob Brown", "1 Other Road")))
    assert diff_box(ada.crop(layout.address.tuple()), bob.crop(layout.address.tuple())) is not None
    assert diff_box(ada.crop(layout.message.tuple()), bob.crop(layout.message.tuple())) is not None
    assert diff_box(ada.crop(layout.offer.tuple()), bob.crop(layout.offer.tuple())) is not None
    masked = []
    for image in (ada, bob):
        copy = image.copy()
        for box in (layout.address, layout.message, layout.offer):
            copy.paste((0, 0, 0), box.tuple())
        masked.append(copy)
    assert diff_box(*masked) is None


def test_an_offer_whose_code_is_missing_is_left_out_instead_of_failing():
    layout = back_layout("4x6")
    _, with_code = images(job())
    _, without_code = images(job(discount_code=""))
    offer = layout.offer.tuple()
    assert diff_box(with_code.crop(offer), without_code.crop(offer)) is not None
    # No coupon at all: the offer box is plain paper.
    assert len(without_code.crop(offer).getcolors(8) or []) == 1


# ---------------------------------------------------------------- broken designs
@pytest.mark.parametrize(
    "headline",
    ["Hello {frist_name}!", "Hello {first_name", "Hello first_name}", "Hello {0}", "Hi {first_name!r}", "{a.b}"],
)
@pytest.mark.parametrize("renderer", [LocalProofRenderer(), FastProofRenderer()], ids=["local", "fast"])
def test_an_unknown_merge_field_or_a_brace_error_is_a_permanent_creative_error(headline, renderer):
    with pytest.raises(ProofError) as info:
        renderer.render(job(design=replace(DESIGN, headline=headline)))
    assert (info.value.cause, info.value.permanent) == ("creative", True)


@pytest.mark.parametrize("headline", ["Hello {first_name", "Hello first_name}", "Hello {"])
def test_a_brace_error_says_how_to_write_the_field_not_what_python_said(headline):
    with pytest.raises(ProofError) as info:
        FastProofRenderer().render(job(design=replace(DESIGN, headline=headline)))
    assert info.value.message == (
        "The design's headline has a brace that opens or closes nothing: "
        "write merge fields as {first_name} and a literal brace as {{ or }}"
    )


@pytest.fixture
def media(settings, tmp_path) -> Iterator[None]:
    settings.MEDIA_ROOT = str(tmp_path)
    clear_caches()
    yield
    clear_caches()


def test_a_missing_background_is_a_creative_error(media):
    design = replace(DESIGN, version="bg.missing", front_background="proof-templates/gone.png")
    with pytest.raises(ProofError) as info:
        images(job(design=design))
    assert (info.value.cause, info.value.permanent) == ("creative", True)
    assert "missing" in info.value.message


def test_a_background_that_is_not_an_image_is_a_creative_error(media):
    name = default_storage.save("proof-templates/notes.png", ContentFile(b"this is not a picture"))
    with pytest.raises(ProofError) as info:
        images(job(design=replace(DESIGN, version="bg.text", back_background=name)))
    assert (info.value.cause, info.value.permanent) == ("creative", True)


def test_a_custom_background_is_scaled_to_cover_the_front(media):
    buffer = io.BytesIO()
    Image.new("RGB", (400, 300), (220, 20, 20)).save(buffer, "PNG")  # another aspect ratio, much smaller
    name = default_storage.save("proof-templates/red.png", ContentFile(buffer.getvalue()))
    front, _ = images(job(design=replace(DESIGN, version="bg.red", front_background=name)))
    data = front.resize((100, 68)).tobytes()
    pixels = [tuple(data[i : i + 3]) for i in range(0, len(data), 3)]
    red = sum(1 for r, g, b in pixels if r > 150 and g < 90 and b < 90)
    assert red / len(pixels) > 0.8
    assert front.getpixel((0, 0)) == (220, 20, 20)  # the corner too: covered, no border


def _saved(name: str, picture: Image.Image, fmt: str, **params) -> str:
    buffer = io.BytesIO()
    picture.save(buffer, fmt, **params)
    return default_storage.save(f"proof-templates/{name}", ContentFile(buffer.getvalue()))


def _front_pixel(name: str, version: str, at: tuple[int, int]) -> tuple[int, ...]:
    front, _ = images(job(design=replace(DESIGN, version=version, front_background=name)))
    pixel = front.getpixel(at)
    assert isinstance(pixel, tuple)
    return pixel


def test_transparent_parts_of_a_background_print_on_white_not_black(media):
    """A logo on a transparent PNG printed on a black card."""
    clear = Image.new("RGBA", (600, 400), (0, 0, 0, 0))
    assert _front_pixel(_saved("alpha.png", clear, "PNG"), "bg.alpha", (5, 5)) == (255, 255, 255)
    palette = Image.new("P", (600, 400), 0)
    palette.putpalette([10, 20, 30] * 256)
    name = _saved("palette.png", palette, "PNG", transparency=0)
    assert _front_pixel(name, "bg.palette", (5, 5)) == (255, 255, 255)


def test_a_phone_photo_is_turned_upright_as_its_exif_says(media):
    """Orientation 6: the camera stored the picture on its side; the proof used the raw pixels."""
    stored = Image.new("RGB", (400, 600), (0, 0, 255))  # as stored: tall, blue ...
    stored.paste((255, 0, 0), (0, 0, 400, 300))  # ... with its top half red
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to view"
    name = _saved("exif6.jpg", stored, "JPEG", exif=exif.tobytes(), quality=95)
    front, _ = images(job(design=replace(DESIGN, version="bg.exif6", front_background=name)))
    # Upright (600 wide), the stored top half is the right half: red on the right, blue on the left.
    width, height = front.size
    left, right = front.getpixel((10, height // 2)), front.getpixel((width - 10, height // 2))
    assert (left[0] < 60, left[2] > 200) == (True, True), left
    assert (right[0] > 200, right[2] < 60) == (True, True), right


def test_a_16_bit_grey_background_keeps_its_grey(media):
    """16-bit greyscale was clipped to white by convert("RGB")."""
    grey = Image.new("I;16", (600, 400), 0x8080)
    value = _front_pixel(_saved("grey16.png", grey, "PNG"), "bg.grey16", (5, 5))
    assert all(120 <= v <= 136 for v in value), value


@pytest.mark.django_db
@pytest.mark.parametrize("fmt", ["JPEG", "GIF", "BMP", "TIFF"])
def test_a_cut_short_picture_is_refused_at_upload_not_at_proofing(media, fmt):
    """Django's image check reads the header only: a truncated JPEG was
    accepted and then failed every recipient's proof."""
    from django.core.exceptions import ValidationError
    from django.core.files.uploadedfile import SimpleUploadedFile

    from campaigns.models import ProofTemplate

    buffer = io.BytesIO()
    Image.effect_noise((800, 600), 80).convert("RGB").save(buffer, fmt)
    data = buffer.getvalue()
    template = ProofTemplate(
        name="cut", front_background=SimpleUploadedFile(f"cut.{fmt.lower()}", data[: len(data) // 2])
    )
    with pytest.raises(ValidationError) as info:
        template.full_clean()
    assert "damaged or cut short" in str(info.value.message_dict["front_background"])
    whole = ProofTemplate(name="whole", front_background=SimpleUploadedFile(f"whole.{fmt.lower()}", data))
    whole.full_clean()


def test_the_fast_renderer_makes_no_bytes_but_resolves_the_texts():
    proof = FastProofRenderer().render(job())
    assert (proof.front, proof.back) == (b"", b"")
    with pytest.raises(ProofError) as info:
        FastProofRenderer().render(job(first_name=""))
    assert info.value.cause == "creative"


@pytest.mark.parametrize(
    "long_name",
    ["Maximiliana-Wilhelmina Bartholomew-Featherstonehaugh " * 8, "W" * 300],
    ids=["many-words", "one-unbreakable-word"],
)
def test_a_very_long_name_stays_inside_the_card_and_its_box(long_name):
    base, _ = images(job(design=replace(DESIGN, headline="")))
    front, _ = images(job(first_name=long_name.strip()))
    changed = diff_box(front, base)
    assert changed is not None
    layout = front_layout("4x6")
    card = Box(0, 0, *pixel_size("4x6"))
    safe = Box(card.x0 + 75, card.y0 + 75, card.x1 - 75, card.y1 - 75)  # 1/8" bleed + 1/8" safe zone
    assert inside(changed, safe)
    text_area = Box(layout.headline.x0, layout.headline.y0, layout.headline.x1, layout.subline.y1)
    assert inside(changed, text_area, pad=30)  # the shadow's blur, nothing more


def test_a_long_address_shrinks_to_stay_in_the_zone():
    layout = back_layout("4x6")
    _, short = images(job())
    _, long = images(job(address=("Dr. " + "Very-Long-Name " * 8, "Apartment 1234, " * 6)))
    changed = diff_box(short, long)
    assert changed is not None
    assert inside(changed, layout.address)


# ---------------------------------------------------------------- Pixelixe against the stub
@pytest.fixture
def pixelixe() -> Iterator[Simulator]:
    sim = Simulator(handlers={"pixelixe": PixelixeHandler}, secrets={"pixelixe": SECRET_KEY}).start()
    try:
        yield sim
    finally:
        sim.stop()


def client(sim: Simulator, api_key: str = SECRET_KEY, timeout: float = 2.0) -> PixelixeRenderer:
    return PixelixeRenderer(api_key=api_key, base_url=f"{sim.base_url}/pixelixe/api", timeout=timeout)


def test_pixelixe_renders_both_sides_at_the_card_size(pixelixe):
    proof = client(pixelixe).render(job())
    handler = pixelixe.handlers["pixelixe"]
    assert handler.renders == 2
    for side in (proof.front, proof.back):
        with Image.open(io.BytesIO(side)) as image:
            assert image.size == pixel_size("4x6")
            assert image.info["dpi"] == pytest.approx((300, 300), abs=0.01)
            assert image.text["headline"] == "Hello Ada!"
            assert image.text["discount_code"] == "WARM-1234"
            assert image.text["address"].splitlines()[0] == "Ada Lovelace"
    body = handler.bodies[0]
    assert body["document_uid"] == "demo-front-4x6"
    assert (body["format"], body["image_type"], body["custom_field"]) == ("json", "png", "7")
    assert all(request.headers.get("authorization") is None for request in pixelixe.captured("pixelixe"))


def test_pixelixe_status_error_is_a_creative_error(pixelixe):
    design = replace(DESIGN, pixelixe_front_uid="no-such-document")
    with pytest.raises(ProofError) as info:
        client(pixelixe).render(job(design=design))
    assert (info.value.cause, info.value.permanent) == ("creative", True)
    assert "no-such-document" in info.value.message


def test_a_design_without_a_pixelixe_document_is_a_creative_error(pixelixe):
    with pytest.raises(ProofError, match="no Pixelixe document for the back") as info:
        client(pixelixe).render(job(design=replace(DESIGN, pixelixe_back_uid="")))
    assert info.value.cause == "creative"


def test_pixelixe_5xx_is_a_transient_proof_error(pixelixe):
    pixelixe.inject("pixelixe", 503)
    with pytest.raises(ProofError) as info:
        client(pixelixe).render(job())
    assert (info.value.cause, info.value.permanent, info.value.status_code) == ("proof", False, 503)


def test_pixelixe_429_carries_the_wait(pixelixe):
    pixelixe.inject("pixelixe", 429)
    with pytest.raises(ProofError) as info:
        client(pixelixe).render(job())
    assert (info.value.cause, info.value.permanent) == ("proof", False)
    assert info.value.retry_after is not None


def test_pixelixe_timeout_is_a_transient_proof_error(pixelixe):
    pixelixe.inject("pixelixe", Fault.timeout_after_create(1.0, method="POST"))
    with pytest.raises(ProofError) as info:
        client(pixelixe, timeout=0.3).render(job())
    assert (info.value.cause, info.value.permanent) == ("proof", False)
    assert "timed out" in info.value.message


def test_a_wrong_key_is_a_permanent_proof_error(pixelixe):
    with pytest.raises(ProofError) as info:
        client(pixelixe, api_key="pxl-wrong-key").render(job())
    assert (info.value.cause, info.value.permanent, info.value.status_code) == ("proof", True, 401)
    assert "pxl-wrong-key" not in str(info.value)


def test_an_image_of_the_wrong_size_is_a_permanent_proof_error(pixelixe):
    pixelixe.handlers["pixelixe"].documents["demo-front-4x6"] = (1200, 800)
    with pytest.raises(ProofError) as info:
        client(pixelixe).render(job())
    assert (info.value.cause, info.value.permanent) == ("proof", True)
    assert "1200x800" in info.value.message


class EchoingPixelixe(PixelixeHandler):
    """A vendor that quotes our whole request back in its error: the key must not reach our messages."""

    def handle(self, method, path, query, headers, body):
        if path.endswith("/v2") and b"4xx" in body:
            return self.json_response(422, {"status": "error", "message": f"Bad request {body.decode()}"})
        if path.endswith("/v2") and b"status-error" in body:
            return self.json_response(200, {"status": "error", "message": f"Cannot render {body.decode()}"})
        return super().handle(method, path, query, headers, body)


@pytest.mark.parametrize("uid", ["4xx", "status-error", "5xx", "timeout"])
def test_the_api_key_never_appears_in_an_error_message(uid):
    sim = Simulator(handlers={"pixelixe": EchoingPixelixe}).start()
    try:
        if uid == "5xx":
            sim.inject("pixelixe", 500)
        if uid == "timeout":
            sim.inject("pixelixe", Fault.timeout_after_create(1.0))
        with pytest.raises(ProofError) as info:
            client(sim, timeout=0.3).render(job(design=replace(DESIGN, pixelixe_front_uid=uid)))
    finally:
        sim.stop()
    shown = f"{info.value} {info.value.message} {info.value!r}"
    assert SECRET_KEY not in shown
    if uid in ("4xx", "status-error"):
        assert "[key]" in shown  # the vendor did quote it: we scrubbed it
    assert SECRET_KEY not in repr(client(sim))


# ---------------------------------------------------------------- characters the fonts cannot print
@pytest.mark.parametrize(
    ("merge", "address", "where"),
    [
        ({"first_name": "山田"}, ("Ada Lovelace", "12 St James's Sq"), "card's headline"),
        ({"first_name": "Ana 🌸"}, ("Ada Lovelace", "12 St James's Sq"), "card's headline"),
        ({}, ("王小明", "12 St James's Sq"), "recipient's address"),
    ],
)
def test_a_text_the_fonts_cannot_print_fails_its_proof_instead_of_printing_boxes(merge, address, where):
    with pytest.raises(ProofError) as info:
        images(job(address=address, **merge))
    assert (info.value.cause, info.value.permanent) == ("creative", True)
    assert info.value.message.startswith(f"The {where} has characters the card's font cannot print (")
    assert "empty boxes" in info.value.message


def test_accents_greek_cyrillic_and_joiners_are_printed():
    # Combining marks and zero-width joiners draw nothing of their own: never "missing".
    images(job(first_name="Zoë Ζωή Жанна Jose\u0301", address=("Ana\u200d Müller", "12 St James's Sq")))


def test_a_template_whose_own_text_cannot_be_printed_is_refused_when_saved():
    from django.core.exceptions import ValidationError

    from campaigns.models import ProofTemplate

    template = ProofTemplate(name="Party", headline="Hello {first_name} 🎉", accent_color="#7a3b12")
    with pytest.raises(ValidationError) as info:
        template.clean()
    assert "headline" in info.value.message_dict
    assert "cannot print (“🎉”)" in info.value.message_dict["headline"][0]


def test_threads_missing_the_same_background_decode_it_once():
    """A pool of proof threads starting on a new design each decoded the
    background: one builds, the others wait for its image."""
    import threading
    import time

    from campaigns.proofing.local import _LRU

    cache = _LRU(maxsize=4)
    built: list[int] = []

    def build() -> Image.Image:
        built.append(1)
        time.sleep(0.05)  # a big decode
        return Image.new("RGB", (4, 4))

    results: list[Image.Image] = []
    threads = [threading.Thread(target=lambda: results.append(cache.get(("bg", 1), build))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(built) == 1
    assert len({id(r) for r in results}) == 1
    cache.get(("bg", 2), build)  # another key builds its own
    assert len(built) == 2
