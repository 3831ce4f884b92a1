"""The API checks its input by hand (api/validation.py) and describes it with pydantic models (api/schemas.py, which
the OpenAPI document is built from). Both must say the same thing about every input: accepted or not, and with
the same error types, messages and locations. Hypothesis generates the inputs; pydantic is the reference."""

from __future__ import annotations

from typing import Annotated, Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import Field, TypeAdapter, ValidationError

from image_recovery.api import schemas, validation
from image_recovery.recovery import MAX_PAGE_SIZE

IDS = st.sampled_from(
    ["t1", "trip-euro", ".", "..", "a/b", "x#y", "a\n", "abc\n", "\x7f", "é", "x" * 128, "x" * 129, ""]
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.floats(allow_nan=False) | st.text(max_size=5) | IDS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
FIELD_VALUES = {
    "tripIds": st.lists(IDS | JSON, max_size=3) | JSON,
    "segmentIds": st.lists(IDS, max_size=3) | JSON,
    "reservationIds": st.lists(IDS, max_size=2) | JSON,
    "all": st.booleans() | JSON,
    "retryFailed": st.booleans() | JSON,
    "styleId": IDS | JSON,
    "extra": JSON,
    "TripIds": JSON,
}
BODIES = (
    st.fixed_dictionaries({}, optional=FIELD_VALUES)
    | st.lists(JSON, max_size=2)
    | st.sampled_from([[], "x", 5, True, 1.5])
)


QUEUE_REQUEST = TypeAdapter(schemas.QueueRequest)
LIMIT = TypeAdapter(Annotated[int, Field(ge=1, le=MAX_PAGE_SIZE)])
CURSOR = TypeAdapter(Annotated[str, Field(min_length=1, max_length=validation.CURSOR_MAX)])
BATCH_ID = TypeAdapter(schemas.BatchId)


def reference(adapter: Any, value: Any, loc: tuple = ()) -> list[tuple] | Any:
    """pydantic's answer: the value, or its errors as (loc, type, msg)."""
    try:
        return adapter(value)
    except ValidationError as error:
        return [((*loc, *issue["loc"]), issue["type"], issue["msg"]) for issue in error.errors()]


def ours(check: Any, *args: Any, **kwargs: Any) -> list[tuple] | Any:
    try:
        answer = check(*args, **kwargs)
    except validation.RequestInvalid as error:
        return [(i["loc"], i["type"], i["msg"]) for i in error.issues]
    if isinstance(answer, dict):
        return [(answer["loc"], answer["type"], answer["msg"])]
    return answer


@settings(max_examples=200, deadline=None)
@given(BODIES)
def test_queue_requests_are_judged_as_the_pydantic_model_judges_them(body: Any) -> None:
    # from_attributes: how Powertools' validation read a body parameter (a non-object is model_attributes_type)
    expected = reference(lambda value: QUEUE_REQUEST.validate_python(value, from_attributes=True), body, ("body",))
    got = ours(validation.queue_request, body)

    if isinstance(expected, list):
        assert got == expected
    else:
        assert isinstance(got, validation.QueueRequest)
        assert (got.trip_ids, got.segment_ids, got.reservation_ids) == (
            expected.tripIds,
            expected.segmentIds,
            expected.reservationIds,
        )
        assert (got.all, got.retry_failed, got.style_id) == (expected.all, expected.retryFailed, expected.styleId)


INTEGERS = st.from_regex(r"\A[ \t\n\x1c\xa0\u2028]?[+-]?[0-9_]{0,5}(\.[0_]{0,2})?[ \n\x0b]?\Z") | st.text(max_size=6)


@settings(max_examples=150, deadline=None)
@given(INTEGERS | st.lists(st.text(max_size=2), min_size=2, max_size=2))
def test_limit_is_read_as_pydantic_reads_a_bounded_int(value: Any) -> None:
    loc = ("query", "limit")

    assert ours(validation.integer, value, loc, ge=1, le=MAX_PAGE_SIZE) == reference(LIMIT.validate_python, value, loc)


@settings(max_examples=100, deadline=None)
@given(
    st.text(max_size=3) | st.sampled_from(["a" * 4096, "a" * 4097, "\ud800", "x,y"]) | st.lists(st.text(), max_size=2)
)
def test_cursor_is_read_as_pydantic_reads_a_bounded_string(value: Any) -> None:
    loc = ("query", "cursor")

    got = ours(validation.text, value, loc, min_length=1, max_length=validation.CURSOR_MAX)
    assert got == reference(CURSOR.validate_python, value, loc)


@settings(max_examples=100, deadline=None)
@given(st.from_regex(r"\A[A-Za-z0-9-]{0,66}\n?\Z") | st.text(max_size=4) | st.sampled_from(["..", "café", "a b"]))
def test_batch_ids_are_read_as_the_schema_reads_them(value: str) -> None:
    assert ours(validation.batch_id, value) == reference(BATCH_ID.validate_python, value, ("path", "batch_id"))


@pytest.mark.parametrize(
    ("body", "requested", "selection"),
    [
        ({"tripIds": ["a", "b", "a"], "segmentIds": ["a"]}, [("trip", "a"), ("trip", "b"), ("segment", "a")], "ids"),
        ({"all": True}, [], "all"),
        ({"retryFailed": True, "all": False}, [], "failed"),
    ],
)
def test_a_request_names_its_records_once_in_order_and_says_what_it_selects(
    body: dict, requested: list, selection: str
) -> None:
    request = validation.queue_request(body)

    assert (request.requested, request.selection) == (requested, selection)


def test_no_body_is_a_missing_body() -> None:
    assert ours(validation.queue_request, None) == [(("body",), "missing", "Field required")]
