"""Prompt styles: the table's own when it has any, otherwise the built-in defaults (DESIGN §2)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from image_recovery.errors import BadRequestError
from image_recovery.models import PromptStyleRecord, is_valid_id
from image_recovery.records import MalformedItem, RawItem, report_malformed, wrong_types
from image_recovery.repository import query_pages

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


MAX_TEMPLATE_CHARS = 2000


def parse_style(raw: RawItem) -> PromptStyle:
    """A style row (DynamoDB JSON) as a PromptStyle; MalformedItem when it cannot serve as one.

    A usable row has an id the API can name that matches its SK, a name, a non-empty promptTemplate, and
    isDefault as a boolean when present (DESIGN §2): a row with odd types is skipped, never guessed at.
    """
    wrong = wrong_types(PromptStyleRecord, raw)
    if wrong:
        raise MalformedItem(f"wrong attribute types: {', '.join(sorted(wrong))}")
    row = PromptStyleRecord.from_raw_data(dict(raw))
    if not is_valid_id(row.id) or row.sk != f"{STYLE_PK}#{row.id}":
        raise MalformedItem("id is missing, not a usable id, or differs from the id in SK")
    if not row.name or not row.prompt_template or not row.prompt_template.strip():
        raise MalformedItem("name or promptTemplate is missing")
    return PromptStyle(
        id=row.id,
        name=row.name,
        description=row.description or "",
        prompt_template=row.prompt_template[:MAX_TEMPLATE_CHARS],
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
        """The table's usable styles (malformed rows reported and skipped), or the built-in ones if none."""
        if self._styles is None:
            rows = []
            for raw in (item for items, _ in query_pages(STYLE_PK) for item in items):
                try:
                    rows.append(parse_style(raw))
                except MalformedItem as malformed:
                    report_malformed("styles", raw, malformed.problem)
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
