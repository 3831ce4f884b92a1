"""The provider interface every image generator implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from image_recovery.errors import ModelUnavailableError


@dataclass(frozen=True)
class ImageRequest:
    """What to draw. `prompt` is final model text; `title`/`subtitle` are the record's own words."""

    prompt: str
    negative_prompt: str
    title: str
    subtitle: str
    style_id: str
    seed: int


@dataclass(frozen=True)
class GeneratedImage:
    data: bytes
    content_type: str
    model: str
    throttled_attempts: int = 0  # throttle answers the SDK retried past on the way (the rate governor learns of them)
    # the configured model's refusal, when the image comes from the fallback model instead (`model` names it)
    fell_back_from: ModelUnavailableError | None = None


class ImageProvider(Protocol):
    def generate(self, request: ImageRequest) -> GeneratedImage:
        """Return a PNG image, or raise a GenerationError subclass."""
        ...
