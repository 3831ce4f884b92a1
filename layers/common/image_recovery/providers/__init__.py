"""Image providers and the factory that picks one from configuration."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from image_recovery.providers.base import GeneratedImage, ImageProvider, ImageRequest

__all__ = ["GeneratedImage", "ImageProvider", "ImageRequest", "build_provider"]


def build_provider(name: str, model_id: str, client_factory: Callable[[], Any], fallback_id: str = "") -> ImageProvider:
    """Return the configured provider. `client_factory` builds the bedrock-runtime client, and `fallback_id`
    names the model tried when `model_id` is unavailable ("bedrock" only)."""
    if name == "bedrock":
        from image_recovery.providers.bedrock import BedrockImageProvider

        return BedrockImageProvider(model_id, client_factory, fallback_id)
    if name == "local":
        # needs Pillow, which the Lambda layer does not ship
        from image_recovery.providers.local import LocalImageProvider

        return LocalImageProvider()
    raise ValueError(f"unknown image provider {name!r}: expected 'bedrock' or 'local'")
