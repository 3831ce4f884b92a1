"""Reads and conditional state changes on travel records. The only module that queries the travel table.

Every state change is a conditional write: the condition, not a prior read, decides whether a record
may move, so concurrent requests, sweeps and redelivered messages can never queue or overwrite twice.
Every write also requires the record to exist (DESIGN §2): an UpdateItem on a key the host app has
just deleted would otherwise create a "ghost" item, and the service never creates travel items.

Reads go through `image_recovery.records`, so a malformed item is reported and skipped, never raised.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import count
from typing import Any

from pynamodb.exceptions import UpdateError
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.operand import Path
from pynamodb.expressions.update import Action
from pynamodb.models import Model

from image_recovery import aws
from image_recovery.errors import TRANSIENT_REASONS
from image_recovery.item_size import item_size
from image_recovery.models import (
    IN_FLIGHT,
    MISSING_INDEX_NAME,
    ImageStatus,
    TravelRecord,
    missing_index_values,
    user_pk,
)
from image_recovery.records import read_record, read_records

_CONDITION_FAILED = "ConditionalCheckFailedException"
_BATCH_GET_LIMIT = 100
MAX_ERROR_DETAIL = 500
TRIP_TREE = "TRIP#"  # every trip, segment and reservation key starts with it


def iso_utc(moment: datetime) -> str:
    """The one timestamp format the service writes (ISO-8601, UTC, "Z"), so strings compare in time order."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def utc_now() -> str:
    return iso_utc(datetime.now(UTC))


def image_missing_condition() -> Condition:
    return (
        TravelRecord.image_url.does_not_exist()
        | Path(TravelRecord.image_url).is_type("NULL")
        | (TravelRecord.image_url == "")
    )


def _open_for_image(record: TravelRecord) -> Condition:
    """A job may write an image on the record: it has none, or it still has the one that the regeneration it
    was read with replaces (DESIGN §3: another writer's image, set meanwhile, wins)."""
    if not record.image_replaces:
        return image_missing_condition()
    replaced = record.image_replaces
    return image_missing_condition() | (
        (TravelRecord.image_url == replaced) & (TravelRecord.image_replaces == replaced)
    )


def _not_in_flight() -> Condition:
    return ~TravelRecord.image_status.is_in(*IN_FLIGHT)


def _owned_by_job(job_id: str) -> Condition:
    return TravelRecord.image_job_id == job_id


def _unchanged_since_read(record: TravelRecord) -> Condition:
    """Nothing of the service's own state on the record moved since `record` was read: every state change
    the service makes sets imageUpdatedAt, so pinning it pins the state a decision was made on."""
    if record.image_updated_at is None:
        return TravelRecord.image_updated_at.does_not_exist()
    return TravelRecord.image_updated_at == record.image_updated_at


def _queueable(stale_before: str | None) -> Condition:
    """Nobody is working on it; or, given a cut-off, whoever was has shown no progress since then (stuck)."""
    if stale_before is None:
        return _not_in_flight()
    stale = TravelRecord.image_updated_at.does_not_exist() | (TravelRecord.image_updated_at < stale_before)
    return _not_in_flight() | stale


def _error_detail(detail: str) -> Action:
    return (
        TravelRecord.image_error_detail.set(detail[:MAX_ERROR_DETAIL])
        if detail
        else TravelRecord.image_error_detail.remove()
    )


def conditional_update(record: Model, actions: list, condition: Condition) -> bool:
    """Apply `actions` to any model's item if `condition` holds; False when it does not (someone else
    got there first).

    The item is not read back (no ReturnValues): the caller decided on what it read, and an item that
    another writer broke meanwhile must not turn a write that succeeded into an error.
    """
    hash_key, range_key = record._get_hash_range_key_serialized_values()
    try:
        record._get_connection().update_item(hash_key, range_key=range_key, actions=actions, condition=condition)
    except UpdateError as error:
        if error.cause_response_code == _CONDITION_FAILED:
            return False
        raise
    return True


def update_existing(record: TravelRecord, actions: list, condition: Condition | None = None) -> bool:
    """conditional_update for a travel record, which must still exist: a write never re-creates an item
    the host deleted. False when the record is gone or `condition` does not hold."""
    exists = TravelRecord.pk.exists()
    return conditional_update(record, actions, exists if condition is None else exists & condition)


@dataclass(frozen=True)
class Page:
    records: list[TravelRecord]
    next_key: dict | None
    items: int = 0  # items read for it, usable or not (for what the read cost)
    bytes: int = 0  # their size, as DynamoDB bills it


class RecordRepository:
    # ------------------------------------------------------------------ reads
    def user_records(
        self, user_id: str, *, where: str, ids: Iterable[str] = (), start_key: dict | None = None
    ) -> list[TravelRecord]:
        """Every usable trip, segment and reservation of one user (only `ids`, when given; only those after
        `start_key`, a page's LastEvaluatedKey, when given).

        Reads the user's trip tree (one Query, paged): for the cases the index cannot answer.
        """
        wanted = sorted(set(ids))
        filter_condition = TravelRecord.id.is_in(*wanted) if wanted else None
        pages = query_pages(
            user_pk(user_id),
            range_key_condition=TravelRecord.sk.startswith(TRIP_TREE),
            filter_condition=filter_condition,
            start_key=start_key,
        )
        return [r for items, _ in pages for r in read_records(items, where)]

    def trip_tree(self, user_id: str, *, where: str, limit: int, start_key: dict | None = None) -> Page:
        """The usable records among the next items of the user's trip tree, in key order (from the start, or
        after `start_key`): one Query, so at most `limit` items and at most DynamoDB's 1 MB page, whatever the
        host's items weigh. `next_key` is None when the tree ended within them."""
        response = _query(
            user_pk(user_id),
            range_key_condition=TravelRecord.sk.startswith(TRIP_TREE),
            limit=limit,
            start_key=start_key,
        )
        raw = response.get("Items", [])
        size = sum(item_size(item) for item in raw)
        return Page(list(read_records(raw, where)), response.get("LastEvaluatedKey"), len(raw), size)

    def missing_page(
        self, user_id: str, *, from_index: bool, where: str, limit: int | None = None, start_key: dict | None = None
    ) -> Page:
        """One page of the user's records without images (newest first from the index).

        From the sparse index when it is known complete: cost grows with the missing records only. From
        the user's partition otherwise: always right, and cost grows with the user's records (never with
        the table). Index answers are checked: a copied item can carry another user's index attributes,
        and ownership is the item's PK (DESIGN §2); a record whose image arrived since is dropped.
        """
        pk = user_pk(user_id)
        if from_index:
            response = _query(
                pk, index_name=MISSING_INDEX_NAME, scan_index_forward=False, limit=limit, start_key=start_key
            )
        else:
            response = _query(
                pk,
                range_key_condition=TravelRecord.sk.startswith(TRIP_TREE),
                filter_condition=image_missing_condition(),
                limit=limit,
                start_key=start_key,
            )
        records = [r for r in read_records(response.get("Items", []), where) if r.pk == pk and r.image_missing]
        return Page(records, response.get("LastEvaluatedKey"))

    def missing_after(
        self, user_id: str, *, where: str, after: tuple[str, str] | None, limit: int
    ) -> tuple[list[TravelRecord], bool]:
        """Up to `limit` of the user's missing records that come after position `after` (sort value, SK) in
        newest-first order, read from the sparse index; and whether more may follow."""
        pk = user_pk(user_id)
        start_key = None
        if after is not None:
            sort, sk = after
            start_key = {
                "imageMissingOwner": {"S": pk},
                "imageMissingSort": {"S": sort},
                "PK": {"S": pk},
                "SK": {"S": sk},
            }
        found: list[TravelRecord] = []
        while True:
            page = self.missing_page(user_id, from_index=True, where=where, limit=limit + 1, start_key=start_key)
            found.extend(page.records)
            if len(found) > limit:
                return found[:limit], True
            if page.next_key is None:
                return found, False
            start_key = page.next_key

    def count_missing(self, user_id: str) -> int:
        """How many of the user's records the sparse index holds: their own items only, not copies that still
        carry their index attributes (compared here: a filter on the table's key attributes is refused)."""
        pk = user_pk(user_id)
        pages = query_pages(pk, index_name=MISSING_INDEX_NAME, attributes_to_get=["PK"])
        return sum(item.get("PK", {}).get("S") == pk for items, _ in pages for item in items)

    def get(self, pk: str, sk: str, *, where: str) -> TravelRecord | None:
        """One travel record; None if absent, malformed (reported) or another kind of item.

        A consistent Query on the exact key rather than GetItem, as every read of the travel table is a
        Query, a Scan or a BatchGetItem (the functions' IAM grants no GetItem there).
        """
        response = _query(pk, range_key_condition=TravelRecord.sk == sk, consistent_read=True)
        items = response.get("Items", [])
        return read_record(items[0], where) if items else None

    def get_many(self, keys: Iterable[tuple[str, str]], *, where: str) -> dict[tuple[str, str], TravelRecord]:
        """Records by key, in BatchGetItem calls of up to 100 keys; absent and malformed ones are left out."""
        found = read_records(self.raw_items(keys).values(), where)
        return {(r.pk, r.sk): r for r in found}

    def raw_items(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], dict]:
        """Items by key as stored (DynamoDB JSON, nothing checked), in BatchGetItem calls of up to 100 keys."""
        unique = list(dict.fromkeys(keys))
        table = TravelRecord.Meta.table_name
        found: dict[tuple[str, str], dict] = {}
        for start in range(0, len(unique), _BATCH_GET_LIMIT):
            pending: Any = [{"PK": {"S": pk}, "SK": {"S": sk}} for pk, sk in unique[start : start + _BATCH_GET_LIMIT]]
            for retry in count():
                response = aws.client("dynamodb").batch_get_item(RequestItems={table: {"Keys": pending}})
                for item in response.get("Responses", {}).get(table, []):
                    found[(item["PK"]["S"], item["SK"]["S"])] = item
                pending = response.get("UnprocessedKeys", {}).get(table, {}).get("Keys")
                if not pending:
                    break
                time.sleep(min(0.05 * 2**retry, 1.0))  # DynamoDB returns keys unprocessed when throttled
        return found

    def scan_missing(self, segment: int, total_segments: int, *, where: str) -> Iterator[TravelRecord]:
        """Every record that one segment of a parallel scan of the sparse index holds (missing images only).

        Permanently failed records are left out by the scan's filter; the caller decides about the rest.
        """
        failed_for_good = (TravelRecord.image_status == ImageStatus.FAILED.value) & ~TravelRecord.image_error.is_in(
            *TRANSIENT_REASONS
        )
        condition = image_missing_condition() & ~failed_for_good
        connection = TravelRecord._get_connection()
        start_key = None
        while True:
            response = connection.scan(
                filter_condition=condition,
                segment=segment,
                total_segments=total_segments,
                exclusive_start_key=start_key,
                index_name=MISSING_INDEX_NAME,
            )
            yield from read_records(response.get("Items", []), where)
            start_key = response.get("LastEvaluatedKey")
            if start_key is None:
                return

    # ------------------------------------------------------------------ writes
    def mark_queued(
        self,
        record: TravelRecord,
        *,
        job_id: str,
        batch_id: str,
        style_id: str,
        stale_before: str | None = None,
        replace_image: bool = False,
    ) -> bool:
        """Give the record to a new job, if it is still in the state it was read in and nobody works on it
        (or, with `stale_before`, whoever did has been stuck since before then).

        `replace_image`: a regeneration on request of a record that has an image. The image stays in place, and
        imageReplaces names it until the job writes the new one back (only over that one).
        """
        now = utc_now()
        if replace_image:
            target = [TravelRecord.image_replaces.set(record.image_url)]
            has_image_read = TravelRecord.image_url == record.image_url
        else:
            owner, sort = missing_index_values(record.pk, record.sk, record.created_at)
            target = [
                # keeps the record visible in the sparse index even if the stream has not reached it yet
                TravelRecord.image_missing_owner.set(owner),
                TravelRecord.image_missing_sort.set(sort),
                TravelRecord.image_replaces.remove(),
            ]
            has_image_read = image_missing_condition()
        actions = [
            *target,
            TravelRecord.image_status.set(ImageStatus.QUEUED.value),
            TravelRecord.image_job_id.set(job_id),
            TravelRecord.image_batch_id.set(batch_id),
            TravelRecord.image_style_id.set(style_id),
            TravelRecord.image_queued_at.set(now),
            TravelRecord.image_updated_at.set(now),
            TravelRecord.image_error.remove(),
            TravelRecord.image_error_detail.remove(),
        ]
        condition = has_image_read & _queueable(stale_before) & _unchanged_since_read(record)
        return update_existing(record, actions, condition)

    def mark_resent(self, record: TravelRecord, job_id: str) -> bool:
        """The message of the record's stuck job is sent again: the record is queued for the same job once more,
        if nothing moved since it was read (the progress it pins is the stale one that made it stuck)."""
        now = utc_now()
        actions = [
            TravelRecord.image_status.set(ImageStatus.QUEUED.value),
            TravelRecord.image_queued_at.set(now),
            TravelRecord.image_updated_at.set(now),
        ]
        condition = (
            _owned_by_job(job_id)
            & TravelRecord.image_status.is_in(*IN_FLIGHT)
            & _unchanged_since_read(record)
            & _open_for_image(record)
        )
        return update_existing(record, actions, condition)

    def mark_generating(self, record: TravelRecord, job_id: str) -> bool:
        """queued (or failed after its retries ran out, when the job is redriven) -> generating; counts an attempt.

        The condition pins the status that was read, so the caller knows which state it moved from.
        """
        actions = [
            TravelRecord.image_status.set(ImageStatus.GENERATING.value),
            TravelRecord.image_attempts.add(1),
            TravelRecord.image_updated_at.set(utc_now()),
            TravelRecord.image_error.remove(),
            TravelRecord.image_error_detail.remove(),
        ]
        condition = _owned_by_job(job_id) & (TravelRecord.image_status == record.image_status) & _open_for_image(record)
        return update_existing(record, actions, condition)

    def note_attempt(self, record: TravelRecord, job_id: str) -> bool:
        """A further delivery of a job that is already generating: count it and show it is alive."""
        actions = [TravelRecord.image_attempts.add(1), TravelRecord.image_updated_at.set(utc_now())]
        condition = _owned_by_job(job_id) & (TravelRecord.image_status == ImageStatus.GENERATING.value)
        return update_existing(record, actions, condition)

    def note_retry(self, record: TravelRecord, job_id: str, *, reason: str, detail: str = "") -> bool:
        """Record why the current attempt failed; the job stays generating and will be retried."""
        actions = [
            TravelRecord.image_error.set(reason),
            _error_detail(detail),
            TravelRecord.image_updated_at.set(utc_now()),
        ]
        condition = _owned_by_job(job_id) & (TravelRecord.image_status == ImageStatus.GENERATING.value)
        return update_existing(record, actions, condition)

    def note_waiting(self, record: TravelRecord, job_id: str, *, reason: str, detail: str = "") -> bool:
        """The job waits for something outside its record (the day's image budget): say why on the record, which
        stays in flight, and show the job is alive, so that nothing takes the record over as stuck."""
        actions = [
            TravelRecord.image_error.set(reason),
            _error_detail(detail),
            TravelRecord.image_updated_at.set(utc_now()),
        ]
        condition = _owned_by_job(job_id) & TravelRecord.image_status.is_in(*IN_FLIGHT) & _open_for_image(record)
        return update_existing(record, actions, condition)

    def mark_ready(self, record: TravelRecord, job_id: str, *, image_url: str, image_key: str) -> bool:
        """Write the image back, unless another image was set meanwhile or another job took the record."""
        actions = [
            TravelRecord.image_url.set(image_url),
            TravelRecord.image_key.set(image_key),
            TravelRecord.image_status.set(ImageStatus.READY.value),
            TravelRecord.image_updated_at.set(utc_now()),
            TravelRecord.image_missing_owner.remove(),
            TravelRecord.image_missing_sort.remove(),
            TravelRecord.image_replaces.remove(),
            TravelRecord.image_error.remove(),
            TravelRecord.image_error_detail.remove(),
        ]
        condition = _owned_by_job(job_id) & _open_for_image(record)
        return update_existing(record, actions, condition)

    def mark_failed(self, record: TravelRecord, job_id: str, *, reason: str, detail: str = "") -> bool:
        """The job ended failed. A failed regeneration keeps the image it was to replace (and imageReplaces, so
        that a redriven job can still run)."""
        actions = [
            TravelRecord.image_status.set(ImageStatus.FAILED.value),
            TravelRecord.image_error.set(reason),
            _error_detail(detail),
            TravelRecord.image_failures.add(1),
            TravelRecord.image_updated_at.set(utc_now()),
        ]
        condition = _owned_by_job(job_id) & _open_for_image(record) & TravelRecord.image_status.is_in(*IN_FLIGHT)
        return update_existing(record, actions, condition)

    def settle_in_flight(self, record: TravelRecord, job_id: str) -> bool:
        """The job's record got an image from another writer: its stale queued/generating state becomes ready."""
        actions = [
            TravelRecord.image_status.set(ImageStatus.READY.value),
            TravelRecord.image_replaces.remove(),
            TravelRecord.image_updated_at.set(utc_now()),
            TravelRecord.image_error.remove(),
            TravelRecord.image_error_detail.remove(),
        ]
        condition = _owned_by_job(job_id) & ~_open_for_image(record) & TravelRecord.image_status.is_in(*IN_FLIGHT)
        return update_existing(record, actions, condition)


def _query(
    hash_key: str,
    *,
    range_key_condition: Condition | None = None,
    filter_condition: Condition | None = None,
    index_name: str | None = None,
    scan_index_forward: bool | None = None,
    limit: int | None = None,
    start_key: dict | None = None,
    consistent_read: bool = False,
    attributes_to_get: list[str] | None = None,
) -> dict:
    """One raw Query response (DynamoDB JSON items): parsed by image_recovery.records, not by the model."""
    return TravelRecord._get_connection().query(
        hash_key,
        range_key_condition=range_key_condition,
        filter_condition=filter_condition,
        index_name=index_name,
        scan_index_forward=scan_index_forward,
        limit=limit,
        exclusive_start_key=start_key,
        consistent_read=consistent_read,
        attributes_to_get=attributes_to_get,
    )


def query_pages(
    hash_key: str, *, start_key: dict | None = None, **kwargs: Any
) -> Iterator[tuple[list[dict], dict | None]]:
    """Every page of a raw Query on the travel table (after `start_key`, when given): (DynamoDB JSON items,
    key to resume after the page)."""
    while True:
        response = _query(hash_key, start_key=start_key, **kwargs)
        start_key = response.get("LastEvaluatedKey")
        yield response.get("Items", []), start_key
        if start_key is None:
            return
