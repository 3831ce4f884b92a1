"""Prompt text from a record, its parents and a style.

User data is cleaned (control characters, runs of white space, length) and substituted into the
template in a single pass, so text such as "{details}" inside a trip title stays literal.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass

from image_recovery.models import Reservation, Segment, TravelRecord, Trip
from image_recovery.styles import PromptStyle

MAX_FIELD_CHARS = 120
MAX_PROMPT_CHARS = 1000
_PLACEHOLDER = re.compile(r"\{(subject|details)\}")


@dataclass(frozen=True)
class PromptParts:
    prompt: str
    negative_prompt: str
    title: str
    subtitle: str
    seed: int


def clean(value: str | None, limit: int = MAX_FIELD_CHARS) -> str:
    """Printable, single-line, bounded text; empty for None."""
    if not value:
        return ""
    printable = "".join(" " if unicodedata.category(ch)[0] in "CZ" else ch for ch in value)
    text = " ".join(printable.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _join(*parts: str) -> str:
    return " ".join(p for p in parts if p)


def _describe(record: TravelRecord, trip: Trip | None, segment: Segment | None) -> tuple[str, str, str]:
    """(subject, details, subtitle) for one record."""
    trip_title = clean(trip.title) if trip else ""
    if isinstance(record, Trip):
        dates = _join(clean(record.start_date, 10), "to" if record.end_date else "", clean(record.end_date, 10))
        destination = clean(record.destination)
        details = _join(f"Destination: {destination}." if destination else "", f"Dates: {dates}." if dates else "")
        return f"a trip called '{clean(record.title)}'", details, _join(destination, dates)
    if isinstance(record, Segment):
        route = _join(clean(record.start_location), "to" if record.end_location else "", clean(record.end_location))
        details = _join(f"Route: {route}." if route else "", f"Part of the trip '{trip_title}'." if trip_title else "")
        return f"the journey '{clean(record.name)}'", details, trip_title
    if isinstance(record, Reservation):
        kind = clean(record.reservation_type, 40)
        location = clean(record.location)
        details = _join(
            f"Type: {kind}." if kind else "",
            f"Location: {location}." if location else "",
            f"Part of the journey '{clean(segment.name)}'." if segment else "",
            f"Trip: '{trip_title}'." if trip_title else "",
        )
        return f"'{clean(record.name)}'", details, _join(trip_title, clean(segment.name) if segment else "")
    raise TypeError(f"not a travel record: {type(record).__name__}")


def stable_seed(*parts: str) -> int:
    """A seed that is the same for the same record on every run and every machine."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return int.from_bytes(digest[:4], "big")


def build_prompt(
    record: TravelRecord, style: PromptStyle, *, trip: Trip | None = None, segment: Segment | None = None
) -> PromptParts:
    subject, details, subtitle = _describe(record, trip, segment)
    values = {"subject": subject, "details": details}
    prompt = _PLACEHOLDER.sub(lambda m: values[m.group(1)], style.prompt_template)
    if "{subject}" not in style.prompt_template:  # a table style may omit it; the record must still show
        prompt = _join(prompt, subject, "" if "{details}" in style.prompt_template else details)
    return PromptParts(
        prompt=clean(prompt, MAX_PROMPT_CHARS),
        negative_prompt=clean(style.negative_prompt, 500),
        title=clean(record.display_name) or record.id,
        subtitle=subtitle,
        seed=stable_seed(record.pk, record.sk, style.id),
    )
