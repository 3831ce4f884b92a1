"""Sample data: the original tool's example plus a second user, written the way other writers write.

Records carry only the contract's attributes (DESIGN §2), and missing images take all three forms:
attribute absent, NULL and "".
"""

from __future__ import annotations

from typing import Any

import boto3
from boto3.dynamodb.types import TypeSerializer

ALICE = "user-alice"
BOB = "user-bob"
_serialize = TypeSerializer().serialize

NULL = object()  # marks an imageUrl stored as the DynamoDB NULL type
ABSENT = object()  # marks an item written without imageUrl at all


def _item(pk: str, sk: str, image_url: Any, **attributes: Any) -> dict:
    item = {"PK": pk, "SK": sk, **attributes}
    if image_url is NULL:
        item["imageUrl"] = None
    elif image_url is not ABSENT:
        item["imageUrl"] = image_url
    return item


def trip(user: str, trip_id: str, title: str, created_at: str, image_url: Any = ABSENT, **extra: Any) -> dict:
    return _item(
        f"USER#{user}",
        f"TRIP#{trip_id}",
        image_url,
        entityType="TRIP",
        id=trip_id,
        userId=user,
        title=title,
        createdAt=created_at,
        **extra,
    )


def segment(
    user: str, trip_id: str, segment_id: str, name: str, created_at: str, image_url: Any = ABSENT, **extra: Any
) -> dict:
    return _item(
        f"USER#{user}",
        f"TRIP#{trip_id}#SEGMENT#{segment_id}",
        image_url,
        entityType="SEGMENT",
        id=segment_id,
        userId=user,
        tripId=trip_id,
        name=name,
        createdAt=created_at,
        **extra,
    )


def reservation(
    user: str,
    trip_id: str,
    segment_id: str,
    reservation_id: str,
    name: str,
    created_at: str,
    image_url: Any = ABSENT,
    **extra: Any,
) -> dict:
    return _item(
        f"USER#{user}",
        f"TRIP#{trip_id}#SEGMENT#{segment_id}#RESERVATION#{reservation_id}",
        image_url,
        entityType="RESERVATION",
        id=reservation_id,
        userId=user,
        tripId=trip_id,
        segmentId=segment_id,
        name=name,
        createdAt=created_at,
        **extra,
    )


def sample_items() -> list[dict]:
    """Alice: 5 records missing images (absent, NULL, ""), 2 with images. Bob: 1 missing, 1 with."""
    return [
        trip(
            ALICE,
            "trip-euro",
            "Big Euro Adventure",
            "2026-01-10T09:00:00.000Z",
            ABSENT,
            destination="Paris, Rome and Venice",
            startDate="2026-06-01",
            endDate="2026-06-15",
        ),
        segment(
            ALICE,
            "trip-euro",
            "seg-paris-rome",
            "Paris to Rome",
            "2026-01-10T09:05:00.000Z",
            NULL,
            startLocation="Paris",
            endLocation="Rome",
        ),
        segment(
            ALICE,
            "trip-euro",
            "seg-rome-venice",
            "Rome to Venice",
            "2026-01-10T09:10:00.000Z",
            "",
            startLocation="Rome",
            endLocation="Venice",
        ),
        reservation(
            ALICE,
            "trip-euro",
            "seg-paris-rome",
            "res-eiffel",
            "Eiffel Tower Tour",
            "2026-01-10T09:15:00.000Z",
            ABSENT,
            type="ACTIVITY",
            location="Champ de Mars, Paris",
        ),
        reservation(
            ALICE,
            "trip-euro",
            "seg-rome-venice",
            "res-gondola",
            "Gondola Ride",
            "2026-01-10T09:20:00.000Z",
            "https://images.example.com/gondola.png",
            type="ACTIVITY",
            location="Grand Canal, Venice",
        ),
        trip(ALICE, "trip-summer", "Summer Vacation", "2026-03-02T12:00:00.000Z", NULL, destination="Lisbon"),
        trip(ALICE, "trip-ski", "Ski Weekend", "2025-12-01T08:00:00.000Z", "https://images.example.com/ski.png"),
        trip(BOB, "trip-tokyo", "Tokyo Food Tour", "2026-02-14T10:00:00.000Z", "", destination="Tokyo"),
        trip(BOB, "trip-oslo", "Oslo Fjords", "2026-02-01T10:00:00.000Z", "https://images.example.com/oslo.png"),
    ]


def put_items(table_name: str, items: list[dict], region: str = "us-east-1") -> None:
    client = boto3.client("dynamodb", region_name=region)
    for item in items:
        client.put_item(TableName=table_name, Item={k: _serialize(v) for k, v in item.items()})
