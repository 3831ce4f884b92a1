"""Offline provider: renders a deterministic 16:9 title card with Pillow, for local runs and demos.

Pillow is not in the Lambda layer, so import this module only when the local provider is selected.
"""

from __future__ import annotations

import colorsys
import hashlib
import io

try:
    from PIL import Image, ImageDraw, ImageFont
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("the local image provider needs Pillow: pip install Pillow") from exc

from image_recovery.providers.base import GeneratedImage, ImageRequest

WIDTH, HEIGHT = 1280, 720
MODEL = "local-renderer"
_MARGIN = 80


def _digest(*parts: object) -> bytes:
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()


def _colour(hue: float, lightness: float, saturation: float) -> tuple[int, int, int]:
    r, g, b = colorsys.hls_to_rgb(hue % 1.0, lightness, saturation)
    return round(r * 255), round(g * 255), round(b * 255)


def _wrap(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.FreeTypeFont, width: int, max_lines: int) -> list[str]:
    lines: list[str] = []
    for word in text.split():
        if lines and draw.textlength(f"{lines[-1]} {word}", font=font) <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = f"{lines[-1]} …"
    return lines


class LocalImageProvider:
    def generate(self, request: ImageRequest) -> GeneratedImage:
        # The style fixes the palette's base hue; title and seed vary the tones and the shapes.
        style = _digest("style", request.style_id)
        variant = _digest("variant", request.style_id, request.title, request.seed)
        base_hue = style[0] / 255

        top = _colour(base_hue + variant[0] / 2550, 0.18 + variant[1] / 2550, 0.55)
        bottom = _colour(base_hue + 0.08 + variant[2] / 2550, 0.42 + variant[3] / 2550, 0.65)
        image = Image.new("RGB", (WIDTH, HEIGHT))
        draw = ImageDraw.Draw(image)
        for y in range(HEIGHT):
            t = y / (HEIGHT - 1)
            draw.line(
                [(0, y), (WIDTH, y)],
                fill=tuple(round(a + (b - a) * t) for a, b in zip(top, bottom, strict=True)),
            )

        overlay = Image.new("RGBA", (WIDTH, HEIGHT), (0, 0, 0, 0))
        shapes = ImageDraw.Draw(overlay)
        for i in range(6):
            x, y, r, h = variant[4 + 4 * i : 8 + 4 * i]
            cx, cy, radius = x * WIDTH // 255, y * HEIGHT // 255, 60 + r
            fill = (*_colour(base_hue + (style[1 + i] - 128) / 1024, 0.55 + h / 1275, 0.7), 70)
            shapes.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=fill)
        image = Image.alpha_composite(image.convert("RGBA"), overlay).convert("RGB")
        draw = ImageDraw.Draw(image)

        text_width = WIDTH - 2 * _MARGIN
        y = 190
        title_font = ImageFont.load_default(size=64)
        for line in _wrap(draw, request.title, title_font, text_width, max_lines=3):
            draw.text((_MARGIN, y), line, font=title_font, fill=(255, 255, 255))
            y += 78
        subtitle_font = ImageFont.load_default(size=34)
        y += 16
        for line in _wrap(draw, request.subtitle, subtitle_font, text_width, max_lines=2):
            draw.text((_MARGIN, y), line, font=subtitle_font, fill=(235, 235, 235))
            y += 44
        footer_font = ImageFont.load_default(size=20)
        draw.text((_MARGIN, HEIGHT - 50), f"style: {request.style_id}", font=footer_font, fill=(220, 220, 220))

        buffer = io.BytesIO()
        image.save(buffer, format="PNG", optimize=False, compress_level=6)
        return GeneratedImage(data=buffer.getvalue(), content_type="image/png", model=MODEL)
