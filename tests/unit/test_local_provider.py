from __future__ import annotations

import io

from PIL import Image

from image_recovery.providers import ImageRequest, build_provider
from image_recovery.providers.local import LocalImageProvider


def _request(**overrides: object) -> ImageRequest:
    fields: dict[str, object] = {
        "prompt": "ignored by the local renderer",
        "negative_prompt": "",
        "title": "A long weekend walking the coast path from Padstow to Newquay and back again by bus",
        "subtitle": "Cornwall, May 2023",
        "style_id": "watercolor",
        "seed": 7,
    }
    fields.update(overrides)
    return ImageRequest(**fields)  # type: ignore[arg-type]


def test_renders_a_valid_16_9_png() -> None:
    result = LocalImageProvider().generate(_request())
    assert (result.content_type, result.model) == ("image/png", "local-renderer")
    image = Image.open(io.BytesIO(result.data))
    assert image.format == "PNG" and image.size == (1280, 720)
    assert len(image.getcolors(maxcolors=1 << 20) or []) > 100  # a real drawing, not a flat fill


def test_same_request_gives_identical_bytes() -> None:
    provider = LocalImageProvider()
    assert provider.generate(_request()).data == provider.generate(_request()).data


def test_title_style_and_seed_change_the_image() -> None:
    provider = LocalImageProvider()
    base = provider.generate(_request()).data
    assert provider.generate(_request(title="Another trip")).data != base
    assert provider.generate(_request(style_id="noir")).data != base
    assert provider.generate(_request(seed=8)).data != base


def test_style_sets_the_palette() -> None:
    def corner(style_id: str) -> tuple[int, ...]:
        data = LocalImageProvider().generate(_request(style_id=style_id, title="", subtitle="")).data
        return Image.open(io.BytesIO(data)).getpixel((0, 0))

    assert corner("watercolor") != corner("noir")


def test_build_provider_local_does_not_need_a_client() -> None:
    provider = build_provider("local", "", lambda: (_ for _ in ()).throw(AssertionError("no client")))
    assert isinstance(provider, LocalImageProvider)
