"""Reads and conditional state changes on travel records. The only module that queries the travel table.

Every state change is a conditional write: the condition, not a prior read, decides whether a record
may move, so concurrent requests, sweeps and redelivered messages can never queue or overwrite twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from pynamodb.exceptions import UpdateError
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.operand import Path
from pynamodb.expressions.update import Action
from pynamodb.models import Model

from image_recovery.models import (
    IN_FLIGHT,
    ImageStatus,
    Reservation,
    Segment,
    TravelRecord,
    Trip,
    missing_index_values,
    user_pk,
)

_TRAVEL_CLASSES = (Trip, Segment, Reservation)
_CONDITION_FAILED = "ConditionalCheckFailedException"
MAX_ERROR_DETAIL = 500


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


def _is_travel_record() -> Condition:
    return TravelRecord.entity_type.is_in(*_TRAVEL_CLASSES)


def _not_in_flight() -> Condition:
    return ~TravelRecord.image_status.is_in(*IN_FLIGHT)


def _owned_by_job(job_id: str) -> Condition:
    return TravelRecord.image_job_id == job_id


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
    got there first)."""
    try:
        record.update(actions=actions, condition=condition)
    except UpdateError as error:
        if error.cause_response_code == _CONDITION_FAILED:
            return False
        raise
    return True


@dataclass(frozen=True)
class Page:
    records: list[TravelRecord]
    next_key: dict | None


class RecordRepository:
    def user_records(self, user_id: str) -> list[TravelRecord]:
        """Every trip, segment and reservation of one user (other item kinds in the partition are ignored).

        Reads the whole partition: only for the rare cases the index cannot answer (see RecoveryService).
        """
        return list(TravelRecord.query(user_pk(user_id), filter_condition=_is_travel_record()))

    def missing_for_user(
        self, user_id: str, *, from_index: bool, limit: int | None = None, start_key: dict | None = None
    ) -> Page:
        """The user's records without images.

        From the sparse index (newest first) when it is known complete: cost grows with the missing
        records only. Otherwise from the user's partition, filtered: always right, and cost grows with
        the user's records (never with the table). A record whose image arrived after the index was
        last reconciled is dropped either way.
        """
        if from_index:
            result = TravelRecord.missing_images.query(
                user_pk(user_id), scan_index_forward=False, limit=limit, last_evaluated_key=start_key
            )
        else:
            result = TravelRecord.query(
                user_pk(user_id),
                filter_condition=_is_travel_record() & image_missing_condition(),
                limit=limit,
                last_evaluated_key=start_key,
            )
        records = [r for r in result if r.image_missing]
        return Page(records, result.last_evaluated_key)

    def get(self, pk: str, sk: str) -> TravelRecord | None:
        """One travel record; None if absent or if the key holds another kind of item.

        A Query on the exact key with a filter, not GetItem: the filter runs in DynamoDB, so an item of
        an unknown entityType never reaches the model's discriminator (which would raise on it).
        """
        matches = TravelRecord.query(
            pk, TravelRecord.sk == sk, filter_condition=_is_travel_record(), consistent_read=True
        )
        return next(iter(matches), None)

    def get_many(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], TravelRecord]:
        unique = list(dict.fromkeys(keys))
        if not unique:
            return {}
        return {(r.pk, r.sk): r for r in TravelRecord.batch_get(unique)}

    def scan_queueable(self, segment: int, total_segments: int, *, stale_before: str) -> Iterator[TravelRecord]:
        """Records missing an image that nobody is working on (or that are stuck), from one segment of a
        parallel scan of the sparse index: it holds only records missing images, so this reads no others."""
        condition = image_missing_condition() & _queueable(stale_before)
        return TravelRecord.missing_images.scan(condition, segment=segment, total_segments=total_segments)

    def mark_queued(
        self, record: TravelRecord, *, job_id: str, batch_id: str, style_id: str, stale_before: str | None = None
    ) -> bool:
        now = utc_now()
        owner, sort = missing_index_values(record.pk, record.sk, record.created_at)
        actions = [
            # keeps the record visible in the sparse index even if the stream has not reached it yet
            TravelRecord.image_missing_owner.set(owner),
            TravelRecord.image_missing_sort.set(sort),
            TravelRecord.image_status.set(ImageStatus.QUEUED.value),
            TravelRecord.image_job_id.set(job_id),
            TravelRecord.image_batch_id.set(batch_id),
            TravelRecord.image_style_id.set(style_id),
            TravelRecord.image_queued_at.set(now),
            TravelRecord.image_updated_at.set(now),
            TravelRecord.image_error.remove(),
            TravelRecord.image_error_detail.remove(),
        ]
        return conditional_update(record, actions, image_missing_condition() & _queueable(stale_before))

    def mark_generating(self, record: TravelRecord, job_id: str) -> bool:
        """queued (or failed after its retries ran out, when the job is redriven) -> generating; counts an attempt.

        The condition pins the status that was read, so the caller knows which batch counter to move.
        """
        actions = [
            TravelRecord.image_status.set(ImageStatus.GENERATING.value),
            TravelRecord.image_attempts.add(1),
            TravelRecord.image_updated_at.set(utc_now()),
            TravelRecord.image_error.remove(),
            TravelRecord.image_error_detail.remove(),
        ]
        condition = (
            _owned_by_job(job_id) & (TravelRecord.image_status == record.image_status) & image_missing_condition()
        )
        return conditional_update(record, actions, condition)

    def note_attempt(self, record: TravelRecord, job_id: str) -> bool:
        """A further delivery of a job that is already generating: count it and show it is alive."""
        actions = [TravelRecord.image_attempts.add(1), TravelRecord.image_updated_at.set(utc_now())]
        condition = _owned_by_job(job_id) & (TravelRecord.image_status == ImageStatus.GENERATING.value)
        return conditional_update(record, actions, condition)

    def note_retry(self, record: TravelRecord, job_id: str, *, reason: str, detail: str = "") -> bool:
        """Record why the current attempt failed; the job stays generating and will be retried."""
        actions = [
            TravelRecord.image_error.set(reason),
            _error_detail(detail),
            TravelRecord.image_updated_at.set(utc_now()),
        ]
        condition = _owned_by_job(job_id) & (TravelRecord.image_status == ImageStatus.GENERATING.value)
        return conditional_update(record, actions, condition)

    def mark_ready(self, record: TravelRecord, job_id: str, *, image_url: str, image_key: str) -> bool:
        """Write the image back, unless an image was set meanwhile or another job took the record."""
        actions = [
            TravelRecord.image_url.set(image_url),
            TravelRecord.image_key.set(image_key),
            TravelRecord.image_status.set(ImageStatus.READY.value),
            TravelRecord.image_updated_at.set(utc_now()),
            TravelRecord.image_missing_owner.remove(),
            TravelRecord.image_missing_sort.remove(),
            TravelRecord.image_error.remove(),
            TravelRecord.image_error_detail.remove(),
        ]
        condition = _owned_by_job(job_id) & image_missing_condition()
        return conditional_update(record, actions, condition)

    def mark_failed(self, record: TravelRecord, job_id: str, *, reason: str, detail: str = "") -> bool:
        actions = [
            TravelRecord.image_status.set(ImageStatus.FAILED.value),
            TravelRecord.image_error.set(reason),
            _error_detail(detail),
            TravelRecord.image_updated_at.set(utc_now()),
        ]
        condition = _owned_by_job(job_id) & image_missing_condition() & TravelRecord.image_status.is_in(*IN_FLIGHT)
        return conditional_update(record, actions, condition)
