"""What the host app may write, and what the service makes of it (DESIGN §2, "careless writers").

Items are given as DynamoDB JSON, the way Query, Scan and the stream hand them over.
"""

from __future__ import annotations

import pytest
from boto3.dynamodb.types import TypeSerializer

from image_recovery.models import Reservation, Segment, Trip
from image_recovery.records import MalformedItem, parse_record, read_records
from tests.helpers import metric_total, metrics_emitted

_serialize = TypeSerializer().serialize


def raw(**attributes: object) -> dict:
    return {name: _serialize(value) for name, value in attributes.items()}


TRIP = {
    "PK": "USER#u1",
    "SK": "TRIP#t1",
    "entityType": "TRIP",
    "id": "t1",
    "title": "Lisbon",
    "createdAt": "2026-01-01",
}
SEGMENT = {"PK": "USER#u1", "SK": "TRIP#t1#SEGMENT#s1", "entityType": "SEGMENT", "id": "s1", "name": "Leg"}
RESERVATION = {
    "PK": "USER#u1",
    "SK": "TRIP#t1#SEGMENT#s1#RESERVATION#r1",
    "entityType": "RESERVATION",
    "id": "r1",
    "name": "Hotel",
}


@pytest.mark.parametrize(
    ("item", "kind"),
    [
        (TRIP, Trip),
        (SEGMENT, Segment),
        (RESERVATION, Reservation),
        ({**TRIP, "title": None, "imageUrl": None}, Trip),  # NULL is a missing value, not a wrong type
        ({**TRIP, "PK": "USER#auth0|64a1b2", "SK": "TRIP#Día 1: Lisboa"}, None),  # id differs: see below
        ({**TRIP, "PK": "USER#auth0|64a1b2", "SK": "TRIP#Día 1: Lisboa", "id": "Día 1: Lisboa"}, Trip),
        ({**TRIP, "userId": "somebody-else"}, Trip),  # ownership is the PK's, whatever userId says
    ],
)
def test_records_that_keep_the_contract_are_read(item: dict, kind: type | None) -> None:
    if kind is None:
        with pytest.raises(MalformedItem):
            parse_record(raw(**item))
        return
    record = parse_record(raw(**item))
    assert isinstance(record, kind)
    assert record.owner_id == item["PK"].removeprefix("USER#")


MALFORMED = {
    "no id": {k: v for k, v in TRIP.items() if k != "id"},
    "empty id": {**TRIP, "id": ""},
    "id as a number": {**TRIP, "id": 7},
    "id differs from the key": {**TRIP, "id": "t2"},
    "user id holding #": {**TRIP, "PK": "USER#org#42"},
    "empty user id": {**TRIP, "PK": "USER#"},
    "not a user partition": {**TRIP, "PK": "ORG#42"},
    "createdAt as a number": {**TRIP, "createdAt": 1767225600},
    "title as a number": {**TRIP, "title": 42},
    "name as a list": {**SEGMENT, "name": ["a", "b"]},
    "imageUrl as a number": {**TRIP, "imageUrl": 0},
    "imageAttempts as a string": {**TRIP, "imageAttempts": "3"},
    "unknown entityType": {**TRIP, "entityType": "trip"},
    "no entityType": {k: v for k, v in TRIP.items() if k != "entityType"},
    "segment with a trip's key": {**SEGMENT, "SK": "TRIP#t1"},
    "reservation without its segment": {**RESERVATION, "SK": "TRIP#t1#RESERVATION#r1"},
    "id holding /": {**SEGMENT, "SK": "TRIP#t1#SEGMENT#a/b", "id": "a/b"},
    "id that is ..": {**TRIP, "SK": "TRIP#..", "id": ".."},
    "empty trip id in the key": {**SEGMENT, "SK": "TRIP##SEGMENT#s1"},
}


@pytest.mark.parametrize("item", MALFORMED.values(), ids=MALFORMED.keys())
def test_records_that_break_the_contract_are_malformed(item: dict) -> None:
    with pytest.raises(MalformedItem):
        parse_record(raw(**item))


@pytest.mark.parametrize(
    "item",
    [
        {"PK": "USER#u1", "SK": "PROFILE", "entityType": "PROFILE"},
        {"PK": "USER#u1", "SK": "SETTINGS#theme"},
        {"PK": "STYLE", "SK": "STYLE#watercolor", "entityType": "STYLE", "id": "watercolor"},
    ],
)
def test_rows_outside_the_trip_tree_are_not_ours_and_not_reported(item: dict) -> None:
    assert parse_record(raw(**item)) is None


def test_one_malformed_item_is_reported_and_never_stops_the_others(capsys, caplog) -> None:
    items = [raw(**TRIP), raw(**MALFORMED["title as a number"]), raw(**SEGMENT), raw(**MALFORMED["no id"])]

    records = list(read_records(items, "listing"))

    assert [r.sk for r in records] == ["TRIP#t1", "TRIP#t1#SEGMENT#s1"]
    assert metric_total(metrics_emitted(capsys.readouterr().out), "MalformedRecords", where="listing") == 2
    warnings = [r for r in caplog.records if r.getMessage() == "skipped a malformed record"]
    assert [(w.where, w.problem) for w in warnings] == [
        ("listing", "wrong attribute types: title"),
        ("listing", "id is missing or not a usable id"),
    ]
    # only its keys and the problem, never its content (the title was 42)
    assert all("42" not in w.getMessage() + w.problem + w.PK + w.SK for w in warnings)
