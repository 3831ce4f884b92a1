"""Prompt text from hostile user data (slice of issue 6): bounded, single-line, template intact, within
every supported model's limits."""

from __future__ import annotations

import json
import unicodedata

import boto3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from image_recovery.models import Reservation, Segment, Trip
from image_recovery.prompts import MAX_PROMPT_CHARS, build_prompt
from image_recovery.providers.base import ImageRequest
from image_recovery.providers.bedrock import BedrockImageProvider
from image_recovery.styles import BUILT_IN_STYLES
from tests.helpers import sized

texts = st.text(max_size=3000) | st.sampled_from(["{subject}", "{details}", "}{", "\u202e", "\x00\n\r\t", "🌍" * 500])
MODELS = {
    "stability.stable-image-core-v1:1": ("prompt", 10_000),
    "amazon.titan-image-generator-v2:0": ("text", 512),
    "us.amazon.nova-canvas-v1:0": ("text", 1024),
}


class CapturingClient:
    meta = boto3.client("bedrock-runtime", region_name="us-east-1").meta  # its events, for the retry hook

    def __init__(self) -> None:
        self.bodies: list[dict] = []

    def invoke_model(self, **kwargs):
        self.bodies.append(json.loads(kwargs["body"]))
        raise RuntimeError("captured")


@pytest.mark.soak
@settings(max_examples=sized(ci=150, soak=5000), deadline=None)
@given(title=texts, name=texts, location=texts, kind=texts, style=st.sampled_from(BUILT_IN_STYLES))
def test_user_text_cannot_break_out_of_the_prompt_or_its_limits(title, name, location, kind, style) -> None:
    trip = Trip("USER#u", "TRIP#t", id="t", user_id="u", title=title, destination=location)
    segment = Segment("USER#u", "TRIP#t#SEGMENT#s", id="s", user_id="u", trip_id="t", name=name)
    record = Reservation(
        "USER#u",
        "TRIP#t#SEGMENT#s#RESERVATION#r",
        id="r",
        user_id="u",
        trip_id="t",
        segment_id="s",
        name=name,
        location=location,
        reservation_type=kind,
    )

    parts = build_prompt(record, style, trip=trip, segment=segment)

    assert len(parts.prompt) <= MAX_PROMPT_CHARS
    assert not any(unicodedata.category(ch) in ("Cc", "Zl", "Zp") for ch in parts.prompt)
    fixed = style.prompt_template.split("{subject}")[0].strip()
    assert parts.prompt.startswith(fixed[: min(len(fixed), 40)])  # the style's own words come first, intact

    for model_id, (field, limit) in MODELS.items():
        client = CapturingClient()
        request = ImageRequest(parts.prompt, parts.negative_prompt, parts.title, parts.subtitle, style.id, parts.seed)
        with pytest.raises(RuntimeError, match="captured"):  # the body is what we check, not a response
            BedrockImageProvider(model_id, lambda client=client: client).generate(request)
        (body,) = client.bodies
        text = body.get(field) or body["textToImageParams"][field]
        assert 0 < len(text) <= limit
