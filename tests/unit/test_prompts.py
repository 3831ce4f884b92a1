"""Prompt building: record names with parent context, single-pass templating, cleaning, caps and seeds."""

from __future__ import annotations

import unicodedata

import pytest

from image_recovery.models import Reservation, Segment, TravelRecord, Trip
from image_recovery.prompts import MAX_FIELD_CHARS, MAX_PROMPT_CHARS, build_prompt
from image_recovery.styles import BUILT_IN_STYLES, PromptStyle

STYLE = BUILT_IN_STYLES[0]
CREATED = "2026-01-10T09:00:00.000Z"


def make_trip(title: str = "Big Euro Adventure", trip_id: str = "t1", **extra: str) -> Trip:
    return Trip("USER#u1", Trip.sort_key(trip_id), id=trip_id, user_id="u1", title=title, created_at=CREATED, **extra)


def make_segment(name: str = "Paris to Rome", **extra: str) -> Segment:
    return Segment(
        "USER#u1",
        Segment.sort_key("t1", "s1"),
        id="s1",
        user_id="u1",
        trip_id="t1",
        name=name,
        created_at=CREATED,
        **extra,
    )


def make_reservation(name: str = "Eiffel Tower Tour", **extra: str) -> Reservation:
    return Reservation(
        "USER#u1",
        Reservation.sort_key("t1", "s1", "r1"),
        id="r1",
        user_id="u1",
        trip_id="t1",
        segment_id="s1",
        name=name,
        created_at=CREATED,
        **extra,
    )


def style(template: str, style_id: str = "custom", negative: str = "") -> PromptStyle:
    return PromptStyle(style_id, "Custom", "", template, negative, True)


def prompt_for(record: TravelRecord, prompt_style: PromptStyle = STYLE, **parents: TravelRecord) -> str:
    return build_prompt(record, prompt_style, **parents).prompt


def has_control_characters(text: str) -> bool:
    return any(unicodedata.category(ch).startswith("C") for ch in text)


# ------------------------------------------------------------------ content and parent context
def test_trip_prompt_names_the_trip_and_its_details() -> None:
    trip = make_trip(destination="Paris, Rome and Venice", start_date="2026-06-01", end_date="2026-06-15")

    parts = build_prompt(trip, STYLE)

    assert "Big Euro Adventure" in parts.prompt
    assert "Paris, Rome and Venice" in parts.prompt
    assert "2026-06-01 to 2026-06-15" in parts.prompt
    assert parts.title == "Big Euro Adventure"
    assert parts.negative_prompt == STYLE.negative_prompt


def test_segment_prompt_carries_its_trip_title() -> None:
    segment = make_segment(start_location="Paris", end_location="Rome")

    parts = build_prompt(segment, STYLE, trip=make_trip())

    assert "Paris to Rome" in parts.prompt
    assert "Big Euro Adventure" in parts.prompt
    assert parts.subtitle == "Big Euro Adventure"


def test_reservation_prompt_carries_its_trip_and_segment() -> None:
    reservation = make_reservation(reservation_type="ACTIVITY", location="Champ de Mars, Paris")

    parts = build_prompt(reservation, STYLE, trip=make_trip(), segment=make_segment())

    for expected in ("Eiffel Tower Tour", "Big Euro Adventure", "Paris to Rome", "ACTIVITY", "Champ de Mars, Paris"):
        assert expected in parts.prompt
    assert parts.subtitle == "Big Euro Adventure Paris to Rome"


def test_a_record_without_a_name_is_titled_by_its_id() -> None:
    assert build_prompt(make_trip(title=""), STYLE).title == "t1"


# ------------------------------------------------------------------ templating
@pytest.mark.parametrize("title", ["Trip {details}", "Trip {subject}", "{subject} and {details}", "{{subject}}"])
def test_placeholders_inside_user_text_stay_literal(title: str) -> None:
    # Given a trip whose title looks like a template placeholder
    trip = make_trip(title=title, destination="Lisbon")

    # When the prompt is built
    prompt = prompt_for(trip)

    # Then the title appears verbatim and the template's own placeholders were filled exactly once
    assert f"'{title}'" in prompt
    assert prompt.count("Destination: Lisbon.") == 1
    assert prompt.count("A vintage travel poster of") == 1


def test_template_placeholders_are_all_substituted() -> None:
    prompt = prompt_for(make_trip(destination="Lisbon"), style("{subject} | {details} | {subject}"))
    assert prompt == "a trip called 'Big Euro Adventure' | Destination: Lisbon. | a trip called 'Big Euro Adventure'"


def test_a_template_without_subject_still_mentions_the_subject() -> None:
    prompt = prompt_for(make_trip(destination="Lisbon"), style("Moody oil painting, no text."))

    assert prompt.startswith("Moody oil painting, no text.")
    assert "Big Euro Adventure" in prompt
    assert "Lisbon" in prompt


def test_a_template_with_details_but_no_subject_names_the_details_once() -> None:
    trip = make_trip(destination="Lisbon")

    prompt = prompt_for(trip, style("Painted. {details}"))

    assert prompt.count("Lisbon") == 1
    assert "Big Euro Adventure" in prompt


# ------------------------------------------------------------------ cleaning and caps
@pytest.mark.parametrize(
    "dirty",
    [
        "Big\nEuro\r\nAdventure",
        "Big\tEuro\x00Adventure",
        "Big\x1b[31mEuro\x7fAdventure",
        "Big\u2028Euro\u200bAdventure",
    ],
)
def test_control_characters_and_line_breaks_are_removed(dirty: str) -> None:
    trip = make_trip(title=dirty, destination="Paris\nRome")

    parts = build_prompt(make_reservation(name=dirty), STYLE, trip=trip, segment=make_segment(name=dirty))

    for text in (parts.prompt, parts.title, parts.subtitle):
        assert not has_control_characters(text), repr(text)
        assert "\n" not in text and "\r" not in text and "  " not in text
    assert "Big" in parts.prompt and "Adventure" in parts.prompt


HUGE = "x" * 10_000


@pytest.mark.parametrize(
    ("record", "parents"),
    [
        (make_trip(title=HUGE, destination=HUGE, start_date=HUGE, end_date=HUGE), {}),
        (make_segment(name=HUGE, start_location=HUGE, end_location=HUGE), {"trip": make_trip(title=HUGE)}),
        (
            make_reservation(name=HUGE, reservation_type=HUGE, location=HUGE),
            {"trip": make_trip(title=HUGE), "segment": make_segment(name=HUGE)},
        ),
    ],
    ids=["trip", "segment", "reservation"],
)
def test_every_field_is_capped(record: TravelRecord, parents: dict) -> None:
    parts = build_prompt(record, STYLE, **parents)

    assert len(parts.prompt) <= MAX_PROMPT_CHARS
    assert len(parts.title) <= MAX_FIELD_CHARS
    assert len(parts.subtitle) <= 3 * MAX_FIELD_CHARS
    # capped per field, not just at the end: the template's closing words survive
    assert parts.prompt.endswith("no text.")


def test_a_huge_style_template_is_capped_too() -> None:
    parts = build_prompt(make_trip(), style("{subject} " + "y" * 10_000, negative="n" * 10_000))

    assert len(parts.prompt) <= MAX_PROMPT_CHARS
    assert len(parts.negative_prompt) <= 500


# ------------------------------------------------------------------ seed
def test_seed_is_stable_for_the_same_record_and_style() -> None:
    assert build_prompt(make_trip(), STYLE).seed == build_prompt(make_trip(), STYLE).seed


def test_seed_ignores_display_text_but_follows_the_record_and_style() -> None:
    seed = build_prompt(make_trip(), STYLE).seed

    assert build_prompt(make_trip(title="Renamed"), STYLE).seed == seed
    assert build_prompt(make_trip(trip_id="t2"), STYLE).seed != seed
    assert build_prompt(make_trip(), BUILT_IN_STYLES[1]).seed != seed
    assert 0 <= seed < 2**32
