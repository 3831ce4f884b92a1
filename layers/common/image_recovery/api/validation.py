"""The HTTP API's input rules, checked in plain Python.

A refused request gets what it got when Powertools' validation and pydantic checked it: the same error types,
messages and locations (`details`, docs/api.md), in the same order. Doing it by hand keeps pydantic and
Powertools' event handler out of the API's cold start (about 200 ms, docs/benchmark.md). api/schemas.py states
the same rules as pydantic models for the OpenAPI document; tests/unit/test_api_validation.py checks that the
two agree on generated input.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from image_recovery.models import MAX_ID_CHARS, is_valid_id

MAX_BODY_BYTES = 64 * 1024  # of the decoded body
CURSOR_MAX = 4096
# The id rule of image_recovery.models.is_valid_id, as far as a pattern can say it (for the OpenAPI document);
# the validator adds the rest ("." and ".." are not ids).
ID_PATTERN = rf"^[^#/\x00-\x1f\x7f-\x9f]{{1,{MAX_ID_CHARS}}}$"
BATCH_ID_PATTERN = r"^[A-Za-z0-9-]{1,64}$"
UNUSABLE_ID = "not a usable id: 1-128 characters without '#', '/' or control characters, not '.' or '..'"
ID_LISTS = ("tripIds", "segmentIds", "reservationIds")
BOOLEAN_FIELDS = ("all", "retryFailed", "regenerate", "confirmOverBudget")
QUEUE_FIELDS = (*ID_LISTS, *BOOLEAN_FIELDS, "styleId")

# pydantic's patterns are Rust regexes: "$" is the end of the text only (Python's also matches before a final "\n")
_ID = re.compile(ID_PATTERN.removesuffix("$") + r"\Z")
_BATCH_ID = re.compile(BATCH_ID_PATTERN.removesuffix("$") + r"\Z")
# pydantic's integers from text: Rust's whitespace trimmed, digits in groups joined by "_", an optional ".000"
_WHITESPACE = "\t\n\v\f\r \x85\xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B))) + "\u2028\u2029\u202f\u205f\u3000"
_INTEGER = re.compile(r"[+-]?[0-9]+(?:_[0-9]+)*(?:\.0+)?", re.ASCII)

Issue = dict[str, Any]  # {"loc": (...), "type": ..., "msg": ...}


class RequestInvalid(Exception):
    """The request breaks the rules: `issues` say where and how (never the input itself)."""

    def __init__(self, issues: list[Issue]) -> None:
        super().__init__(f"{len(issues)} validation issue(s)")
        self.issues = issues


def issue(loc: tuple[Any, ...], kind: str, msg: str) -> Issue:
    return {"loc": loc, "type": kind, "msg": msg}


def integer(value: Any, loc: tuple[Any, ...], *, ge: int, le: int) -> int | Issue:
    """A query parameter read as pydantic reads an int with ge/le bounds."""
    if not isinstance(value, str):
        return issue(loc, "int_type", "Input should be a valid integer")
    text = value.strip(_WHITESPACE)
    if not _INTEGER.fullmatch(text):
        return issue(loc, "int_parsing", "Input should be a valid integer, unable to parse string as an integer")
    number = int(text.split(".", 1)[0])
    if number < ge:
        return issue(loc, "greater_than_equal", f"Input should be greater than or equal to {ge}")
    if number > le:
        return issue(loc, "less_than_equal", f"Input should be less than or equal to {le}")
    return number


def text(value: Any, loc: tuple[Any, ...], *, min_length: int = 0, max_length: int | None = None) -> str | Issue:
    """A string as pydantic checks one: its type, that it is Unicode text, then its length."""
    if not isinstance(value, str):
        return issue(loc, "string_type", "Input should be a valid string")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return issue(
            loc, "string_unicode", "Input should be a valid string, unable to parse raw data as a unicode string"
        )
    if len(value) < min_length:
        plural = "" if min_length == 1 else "s"
        return issue(loc, "string_too_short", f"String should have at least {min_length} character{plural}")
    if max_length is not None and len(value) > max_length:
        plural = "" if max_length == 1 else "s"
        return issue(loc, "string_too_long", f"String should have at most {max_length} character{plural}")
    return value


def matching(value: Any, loc: tuple[Any, ...], pattern: re.Pattern[str], source: str) -> str | Issue:
    checked = text(value, loc)
    if isinstance(checked, str) and not pattern.search(checked):
        return issue(loc, "string_pattern_mismatch", f"String should match pattern '{source}'")
    return checked


def batch_id(value: Any) -> str | Issue:
    return matching(value, ("path", "batch_id"), _BATCH_ID, BATCH_ID_PATTERN)


def _record_id(value: Any, loc: tuple[Any, ...]) -> str | Issue:
    checked = matching(value, loc, _ID, ID_PATTERN)
    if isinstance(checked, str) and not is_valid_id(checked):
        return issue(loc, "value_error", f"Value error, {UNUSABLE_ID}")
    return checked


@dataclass(frozen=True)
class QueueRequest:
    """Ids (any of the three lists), `all: true` or `retryFailed: true`, plus an optional style; with ids,
    `regenerate: true` queues the named records even when they have an image (DESIGN §3)."""

    trip_ids: list[str]
    segment_ids: list[str]
    reservation_ids: list[str]
    all: bool = False
    retry_failed: bool = False
    style_id: str | None = None
    regenerate: bool = False
    confirm_over_budget: bool = False  # queue even beyond the day's image budget (the rest waits a day)

    @property
    def selection(self) -> str:
        return "all" if self.all else "failed" if self.retry_failed else "ids"

    @property
    def requested(self) -> list[tuple[str, str]]:
        """(type label, id) pairs in request order, duplicates dropped."""
        pairs = [
            *(("trip", i) for i in self.trip_ids),
            *(("segment", i) for i in self.segment_ids),
            *(("reservation", i) for i in self.reservation_ids),
        ]
        return list(dict.fromkeys(pairs))


MAX_IMAGE_IDS = 50  # ids in one GET /images
IMAGE_QUERY = {"trip": "trip", "segment": "segment", "reservation": "reservation"}  # query name -> record type


def image_ids(raw_query: str) -> list[tuple[str, str]]:
    """The (type, id) pairs of GET /images?trip=<id>&segment=<id>&reservation=<id> (each repeatable), in order,
    duplicates dropped; RequestInvalid for an unusable id, an unknown parameter, none or too many. Read from the
    raw query string: API Gateway joins repeated parameters with commas, and an id may hold a comma."""
    issues: list[Issue] = []
    pairs: list[tuple[str, str]] = []
    for index, (name, value) in enumerate(parse_qsl(raw_query, keep_blank_values=True)):
        if name not in IMAGE_QUERY:
            issues.append(issue(("query", name), "extra_forbidden", "Extra inputs are not permitted"))
            continue
        checked = _record_id(value, ("query", name, index))
        if isinstance(checked, dict):
            issues.append(checked)
        else:
            pairs.append((IMAGE_QUERY[name], checked))
    pairs = list(dict.fromkeys(pairs))
    if not issues and not pairs:
        issues.append(issue(("query",), "missing", "Name at least one record: ?trip=, ?segment= or ?reservation="))
    if len(pairs) > MAX_IMAGE_IDS:
        issues.append(issue(("query",), "too_long", f"At most {MAX_IMAGE_IDS} ids, got {len(pairs)}"))
    if issues:
        raise RequestInvalid(issues)
    return pairs


def queue_request(body: Any) -> QueueRequest:
    """The body of POST /image-jobs, or RequestInvalid: field by field, then unknown fields, then the
    rule that only one selection may be sent."""
    if body is None:
        raise RequestInvalid([issue(("body",), "missing", "Field required")])
    if not isinstance(body, dict):
        msg = "Input should be a valid dictionary or object to extract fields from"
        raise RequestInvalid([issue(("body",), "model_attributes_type", msg)])
    issues: list[Issue] = []
    values: dict[str, Any] = {}
    for name in ID_LISTS:
        ids = body.get(name, [])
        if not isinstance(ids, list):
            issues.append(issue(("body", name), "list_type", "Input should be a valid list"))
            continue
        checked = [_record_id(value, ("body", name, index)) for index, value in enumerate(ids)]
        issues += [c for c in checked if isinstance(c, dict)]
        values[name] = checked
    for name in BOOLEAN_FIELDS:  # JSON booleans only: {"all": "yes"} is a 400
        if not isinstance(body.get(name, False), bool):
            issues.append(issue(("body", name), "bool_type", "Input should be a valid boolean"))
    style_id = body.get("styleId")
    if style_id is not None:
        style_id = _record_id(style_id, ("body", "styleId"))
        if isinstance(style_id, dict):
            issues.append(style_id)
    unknown = [name for name in body if name not in QUEUE_FIELDS]
    issues += [issue(("body", name), "extra_forbidden", "Extra inputs are not permitted") for name in unknown]
    if issues:
        raise RequestInvalid(issues)
    request = QueueRequest(
        values["tripIds"],
        values["segmentIds"],
        values["reservationIds"],
        body.get("all", False),
        body.get("retryFailed", False),
        style_id,
        body.get("regenerate", False),
        body.get("confirmOverBudget", False),
    )
    if (
        bool(request.trip_ids or request.segment_ids or request.reservation_ids) + request.all + request.retry_failed
        > 1
    ):
        msg = "Value error, send ids, all=true or retryFailed=true, only one of them"
        raise RequestInvalid([issue(("body",), "value_error", msg)])
    if request.regenerate and (request.all or request.retry_failed):
        msg = "Value error, regenerate=true replaces the images of named records: send ids, not all or retryFailed"
        raise RequestInvalid([issue(("body",), "value_error", msg)])
    return request
