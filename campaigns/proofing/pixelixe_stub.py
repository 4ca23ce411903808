"""A local Pixelixe for tests and the demo: serve it with the printer simulator.

    sim = Simulator(handlers={"pixelixe": PixelixeHandler}).start()
    renderer = PixelixeRenderer(api_key="k", base_url=f"{sim.base_url}/pixelixe/api")

``POST /api/graphic/automation/v2`` answers Pixelixe's v2 JSON (``status``,
``created_at``, ``uid``, ``custom_field``, ``image_url``) with an image_url
back on this server; ``GET /storage/file/<id>.png`` serves a PNG of the
document's size (300 DPI) with the text modifications drawn on it and also
stored as PNG text chunks (``image.text["headline"]``), so tests can check
what was sent without reading pixels.  An unknown ``document_uid`` answers
200 with ``status: "error"``, as Pixelixe does; a wrong key (when the
simulator has a ``pixelixe`` secret) answers 401.  Fault injection is the
simulator's (``sim.inject("pixelixe", 503)``).
"""

from __future__ import annotations

import io
import itertools
import json
import threading
from collections.abc import Mapping
from typing import Any

from PIL import Image, ImageDraw, ImageFont
from PIL.PngImagePlugin import PngInfo

from campaigns.proofing.base import DPI, TRIM_IN, pixel_size
from printers.simulator.registry import VendorHandler

RENDER_PATH = "/api/graphic/automation/v2"
FILE_PREFIX = "/storage/file/"


def demo_documents() -> dict[str, tuple[int, int]]:
    """Document uid → pixel size: ``demo-front-4x6``, ``demo-back-6x11``, …"""
    return {f"demo-{side}-{size}": pixel_size(size) for size in TRIM_IN for side in ("front", "back")}


class PixelixeHandler(VendorHandler):
    name = "pixelixe"

    def __init__(self, sim: Any) -> None:
        super().__init__(sim)
        self.documents: dict[str, tuple[int, int]] = demo_documents()
        self.renders = 0
        self.files: dict[str, bytes] = {}
        self.bodies: list[dict[str, Any]] = []  # every accepted render request, for assertions
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def error_body(self, status: int, message: str, code: str) -> bytes:
        return json.dumps({"status": "error", "message": message}).encode()

    def handle(
        self, method: str, path: str, query: dict[str, list[str]], headers: Mapping[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        if method == "POST" and path == RENDER_PATH:
            return self._render(headers, body)
        if method == "GET" and path.startswith(FILE_PREFIX):
            content = self.files.get(path[len(FILE_PREFIX) :])
            if content is None:
                return self.json_response(404, {"status": "error", "message": "File not found"})
            return 200, {"Content-Type": "image/png"}, content
        return self.json_response(404, {"status": "error", "message": f"No route {method} {path}"})

    def _render(self, headers: Mapping[str, str], raw: bytes) -> tuple[int, dict[str, str], bytes]:
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            return self.json_response(400, {"status": "error", "message": "Body is not JSON"})
        if not isinstance(body, dict):
            return self.json_response(400, {"status": "error", "message": "Body is not a JSON object"})
        if self.secret and body.get("api_key") != self.secret:
            return self.json_response(401, {"status": "error", "message": "Invalid API key"})
        if body.get("format") != "json" or body.get("image_type") != "png":
            return self.json_response(400, {"status": "error", "message": "This stub answers format=json, png only"})
        uid = str(body.get("document_uid") or "")
        size = self.documents.get(uid)
        if size is None:
            return self.json_response(200, {"status": "error", "message": f"Document {uid} not found"})
        modifications = body.get("modifications") or []
        with self._lock:
            self.renders += 1
            file_id = f"{next(self._ids):06d}.png"
            self.bodies.append(body)
        self.files[file_id] = _draw(size, modifications)
        return self.json_response(
            200,
            {
                "status": "success",
                "created_at": "03-11-2026_14-40-12-442",
                "uid": uid,
                "custom_field": body.get("custom_field", ""),
                "image_url": f"{self.sim.base_url}/{self.name}{FILE_PREFIX}{file_id}",
            },
        )


def _draw(size: tuple[int, int], modifications: list[Any]) -> bytes:
    """A plain card with each visible text modification written on it."""
    image = Image.new("RGB", size, (238, 232, 222))
    draw = ImageDraw.Draw(image)
    text_font = ImageFont.load_default(size=max(12, size[1] // 30))
    info = PngInfo()
    y = size[1] // 20
    for item in modifications:
        if not isinstance(item, dict) or item.get("type", "text") != "text":
            continue
        name, text = str(item.get("name") or item.get("element_name") or ""), str(item.get("text") or "")
        info.add_text(name, text)
        if item.get("visible", True) and text:
            draw.text((size[0] // 20, y), f"{name}: {text}", font=text_font, fill=(40, 30, 20))
            y += (text.count("\n") + 1) * size[1] // 25
    out = io.BytesIO()
    image.save(out, "PNG", dpi=(DPI, DPI), pnginfo=info, compress_level=1)
    return out.getvalue()
