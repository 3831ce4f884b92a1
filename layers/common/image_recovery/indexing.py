"""Upkeep of the sparse MissingImages index, whoever wrote the record.

The index holds a record exactly while its image is missing. Our own writes keep it right as they go
(queueing sets the attributes, writing an image back removes them); everything else (the host app, a
migration, a script) is reconciled from the table's stream and, as a backstop, by the repair scan.
Each change is conditional on the image state it was computed from, and a record whose attributes
already agree is left alone, so the stream function's own writes end the loop instead of feeding it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pynamodb.expressions.condition import Condition

from image_recovery import aws
from image_recovery.index_state import IndexState
from image_recovery.models import TravelRecord, missing_index_values
from image_recovery.records import MalformedItem, RawItem, parse_record, report_malformed
from image_recovery.repository import image_missing_condition, update_existing, utc_now


class IndexChange(StrEnum):
    ADDED = "added"
    REMOVED = "removed"
    UNCHANGED = "unchanged"
    NOT_A_RECORD = "not_a_record"
    MALFORMED = "malformed"


@dataclass(frozen=True)
class Reconciled:
    change: IndexChange
    record: TravelRecord | None  # the parsed record; None for other rows and malformed ones


def reconcile(raw: RawItem, where: str) -> Reconciled:
    """Bring one item's index attributes (DynamoDB JSON, as Scan and streams give it) in line with its state.

    A record whose image is missing gets them; one with an image, and a malformed item (reported), loses
    them, so the index holds only records the service can use.
    """
    try:
        record = parse_record(raw)
    except MalformedItem as malformed:
        report_malformed(where, raw, malformed.problem)
        return Reconciled(_remove_index_attributes(raw, condition=None), None)
    if record is None:
        return Reconciled(IndexChange.NOT_A_RECORD, None)
    wanted = missing_index_values(record.pk, record.sk, record.created_at) if record.image_missing else None
    current = (record.image_missing_owner, record.image_missing_sort)
    if wanted == current or (wanted is None and current == (None, None)):
        return Reconciled(IndexChange.UNCHANGED, record)
    if wanted is None:
        return Reconciled(_remove_index_attributes(raw, condition=~image_missing_condition()), record)
    owner, sort = wanted
    actions = [TravelRecord.image_missing_owner.set(owner), TravelRecord.image_missing_sort.set(sort)]
    changed = update_existing(TravelRecord(record.pk, record.sk), actions, image_missing_condition())
    return Reconciled(IndexChange.ADDED if changed else IndexChange.UNCHANGED, record)


def _remove_index_attributes(raw: RawItem, *, condition: Condition | None) -> IndexChange:
    """Take the item out of the index (if it is in); `condition` None: it is malformed, whatever its state."""
    if "imageMissingOwner" not in raw and "imageMissingSort" not in raw:
        return IndexChange.MALFORMED if condition is None else IndexChange.UNCHANGED
    pk, sk = (raw.get(name, {}).get("S") for name in ("PK", "SK"))
    if not isinstance(pk, str) or not isinstance(sk, str):
        return IndexChange.MALFORMED
    actions = [TravelRecord.image_missing_owner.remove(), TravelRecord.image_missing_sort.remove()]
    removed = update_existing(TravelRecord(pk, sk), actions, condition)
    return IndexChange.REMOVED if removed else IndexChange.UNCHANGED


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
        # Whole items, not a projection: a scan is billed by the size of what it reads either way, and a
        # record is checked whole (image_recovery.records) before the service relies on any of it.
        kwargs: dict[str, Any] = {"TableName": table_name}
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
            changes += sum(
                reconcile(item, "repair").change in (IndexChange.ADDED, IndexChange.REMOVED) for item in items
            )
    IndexState(table_name).mark_complete(started)
    return changes
