"""Prompt styles: the table's own when it has any, otherwise the built-in defaults (DESIGN §2)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from image_recovery.errors import BadRequestError
from image_recovery.models import PromptStyleRecord

STYLE_PK = "STYLE"


@dataclass(frozen=True)
class PromptStyle:
    id: str
    name: str
    description: str
    prompt_template: str
    negative_prompt: str
    is_default: bool


_NEGATIVE = "text, letters, watermark, logo, signature, blurry, low quality, distorted"

BUILT_IN_STYLES: tuple[PromptStyle, ...] = (
    PromptStyle(
        id="travel-poster",
        name="Travel poster",
        description="Vintage travel poster: bold flat colours and a strong composition.",
        prompt_template="A vintage travel poster of {subject}. {details} Bold flat colours, strong "
        "composition, clean shapes, no text.",
        negative_prompt=_NEGATIVE,
        is_default=True,
    ),
    PromptStyle(
        id="watercolor",
        name="Watercolor",
        description="Loose watercolor illustration with soft washes on textured paper.",
        prompt_template="A loose watercolor illustration of {subject}. {details} Soft washes, visible "
        "paper texture, light and airy, no text.",
        negative_prompt=_NEGATIVE,
        is_default=False,
    ),
    PromptStyle(
        id="photographic",
        name="Photographic",
        description="Cinematic travel photograph in golden-hour light.",
        prompt_template="A cinematic travel photograph of {subject}. {details} Golden hour light, wide "
        "angle, rich detail, no text.",
        negative_prompt=_NEGATIVE,
        is_default=False,
    ),
)


def _from_record(row: PromptStyleRecord) -> PromptStyle:
    return PromptStyle(
        id=row.id,
        name=row.name,
        description=row.description or "",
        prompt_template=row.prompt_template,
        negative_prompt=row.negative_prompt or _NEGATIVE,
        is_default=bool(row.is_default),
    )


def with_single_default(styles: list[PromptStyle]) -> list[PromptStyle]:
    """Exactly one default: the first (by id) marked default, else the first style by id."""
    ordered = sorted(styles, key=lambda s: s.id)
    chosen = next((s for s in ordered if s.is_default), ordered[0])
    return [replace(s, is_default=s is chosen) for s in ordered]


class StyleCatalog:
    """Styles are read once per container: they change rarely and every job needs one."""

    def __init__(self) -> None:
        self._styles: list[PromptStyle] | None = None

    def all(self) -> list[PromptStyle]:
        if self._styles is None:
            rows = [_from_record(r) for r in PromptStyleRecord.query(STYLE_PK)]
            self._styles = with_single_default(rows) if rows else list(BUILT_IN_STYLES)
        return self._styles

    def default(self) -> PromptStyle:
        return next(s for s in self.all() if s.is_default)

    def resolve(self, style_id: str | None) -> PromptStyle:
        """The named style, or the default when none is named; an unknown id is the caller's mistake."""
        if style_id is None:
            return self.default()
        for style in self.all():
            if style.id == style_id:
                return style
        raise BadRequestError("unknown_style", f"No prompt style with id {style_id!r}; see GET /styles.")

    def resolve_or_default(self, style_id: str) -> PromptStyle:
        """For jobs already queued: a style deleted since falls back to the default instead of failing."""
        return next((s for s in self.all() if s.id == style_id), None) or self.default()
