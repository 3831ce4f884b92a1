"""Upkeep of the sparse MissingImages index, whoever wrote the record.

The index holds a record exactly while its image is missing. Our own writes keep it right as they go
(queueing sets the attributes, writing an image back removes them); everything else (the host app, a
migration, a script) is reconciled from the table's stream and, as a backstop, by the repair scan.
Each change is conditional on the image state it was computed from, and a record whose attributes
already agree is left alone, so the stream function's own writes end the loop instead of feeding it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from enum import StrEnum
from typing import Any

from boto3.dynamodb.types import TypeDeserializer

from image_recovery import aws
from image_recovery.index_state import IndexState
from image_recovery.models import EntityType, Reservation, Segment, TravelRecord, Trip, missing_index_values
from image_recovery.repository import conditional_update, image_missing_condition, utc_now

_MODEL_BY_TYPE: dict[str, type[TravelRecord]] = {
    EntityType.TRIP: Trip,
    EntityType.SEGMENT: Segment,
    EntityType.RESERVATION: Reservation,
}
_deserialize = TypeDeserializer().deserialize


class IndexChange(StrEnum):
    ADDED = "added"
    REMOVED = "removed"
    UNCHANGED = "unchanged"
    NOT_A_RECORD = "not_a_record"


def image_missing(item: Mapping[str, Any]) -> bool:
    """DESIGN §2 on a plain item: absent, NULL (None) and "" are all missing."""
    return not item.get("imageUrl")


def wanted_index(item: Mapping[str, Any]) -> tuple[str, str] | None:
    if not image_missing(item):
        return None
    return missing_index_values(item["PK"], item["SK"], item.get("createdAt"))


def reconcile(item: Mapping[str, Any]) -> IndexChange:
    """Bring one item's index attributes in line with its image state (plain Python values)."""
    model = _MODEL_BY_TYPE.get(item.get("entityType", ""))
    if model is None or not {"PK", "SK"} <= item.keys():
        return IndexChange.NOT_A_RECORD
    wanted = wanted_index(item)
    current = (item.get("imageMissingOwner"), item.get("imageMissingSort"))
    if wanted == current or (wanted is None and current == (None, None)):
        return IndexChange.UNCHANGED
    record = model(item["PK"], item["SK"])
    if wanted is not None:
        owner, sort = wanted
        actions = [TravelRecord.image_missing_owner.set(owner), TravelRecord.image_missing_sort.set(sort)]
        # pk.exists(): an update must never bring a deleted record back as a ghost holding only its index keys
        changed = conditional_update(record, actions, TravelRecord.pk.exists() & image_missing_condition())
        return IndexChange.ADDED if changed else IndexChange.UNCHANGED
    actions = [TravelRecord.image_missing_owner.remove(), TravelRecord.image_missing_sort.remove()]
    changed = conditional_update(record, actions, ~image_missing_condition())
    return IndexChange.REMOVED if changed else IndexChange.UNCHANGED


def plain(image: Mapping[str, Any]) -> dict[str, Any]:
    """A DynamoDB-JSON item (stream image, low-level Scan) as plain Python values."""
    return {key: _deserialize(value) for key, value in image.items()}


# What reconciling and choosing sweep candidates need; the rest of a record is never read by a scan.
_SCAN_PROJECTION = (
    "PK, SK, entityType, id, userId, createdAt, imageUrl, imageMissingOwner, imageMissingSort, "
    "imageStatus, imageUpdatedAt, imageJobId, imageBatchId"
)


def scan_segment(
    table_name: str,
    segment: int,
    total_segments: int,
    start_key: dict | None = None,
    *,
    page_size: int | None = None,
) -> Iterator[tuple[list[dict[str, Any]], dict | None]]:
    """Pages of one parallel-scan segment as (DynamoDB-JSON items, key to resume after this page).

    Without `page_size`, DynamoDB's own pages (up to 1 MB) are used."""
    client = aws.client("dynamodb")
    while True:
        kwargs: dict[str, Any] = {"TableName": table_name, "ProjectionExpression": _SCAN_PROJECTION}
        if total_segments > 1:
            kwargs.update(Segment=segment, TotalSegments=total_segments)
        if page_size:
            kwargs["Limit"] = page_size
        if start_key:
            kwargs["ExclusiveStartKey"] = start_key
        page = client.scan(**kwargs)
        start_key = page.get("LastEvaluatedKey")
        yield page.get("Items", []), start_key
        if not start_key:
            return


def index_existing_records(table_name: str, total_segments: int = 1) -> int:
    """Reconcile every item of the table in this process (local runs, benchmarks); changes made.

    Like a repair run, it completes the index if the stream function was already live when it began.
    """
    started = utc_now()
    changes = 0
    for segment in range(total_segments):
        for items, _ in scan_segment(table_name, segment, total_segments):
            changes += sum(reconcile(plain(item)) in (IndexChange.ADDED, IndexChange.REMOVED) for item in items)
    IndexState().mark_complete(started)
    return changes
