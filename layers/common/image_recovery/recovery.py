"""What the HTTP API does for a signed-in user, free of HTTP: list, queue, follow progress."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from aws_lambda_powertools.metrics import MetricUnit

from image_recovery.batches import BatchProgress, BatchRepository
from image_recovery.errors import BadRequestError, NotFoundError
from image_recovery.index_state import IndexState
from image_recovery.models import Reservation, Segment, TravelRecord, Trip, is_failed
from image_recovery.observability import logger, metrics
from image_recovery.queueing import FAILED, ItemOutcome, Queuer
from image_recovery.repository import RecordRepository
from image_recovery.styles import PromptStyle, StyleCatalog
from image_recovery.tasks import QUEUE_PAGE_SIZE, QueueMissingTask, TaskQueue


@dataclass(frozen=True)
class MissingImages:
    trips: list[dict]
    segments: list[dict]
    reservations: list[dict]

    @property
    def count(self) -> int:
        return len(self.trips) + len(self.segments) + len(self.reservations)


@dataclass(frozen=True)
class QueueResult:
    batch_id: str
    style_id: str
    items: list[ItemOutcome]
    complete: bool = True

    def summary(self) -> dict[str, dict[str, int]]:
        counts = Counter((item.type, item.outcome) for item in self.items)
        return {
            f"{kind}s": {outcome: counts[(kind, outcome)] for outcome in ("queued", "skipped", "failed")}
            for kind in ("trip", "segment", "reservation")
        }


def _newest_first(records: list[TravelRecord]) -> list[TravelRecord]:
    return sorted(records, key=lambda r: (r.created_at or "", r.id), reverse=True)


def _state(record: TravelRecord) -> dict:
    return {
        "id": record.id,
        "createdAt": record.created_at,
        "imageStatus": record.effective_status.value,
        "imageError": record.image_error,
        "imageUpdatedAt": record.image_updated_at,
    }


def parent_keys(records: Iterable[TravelRecord]) -> set[tuple[str, str]]:
    """Keys of the trips and segments that the records' context names."""
    keys: set[tuple[str, str]] = set()
    for record in records:
        if isinstance(record, Segment | Reservation):
            keys.add((record.pk, Trip.sort_key(record.trip_id or "")))
        if isinstance(record, Reservation):
            keys.add((record.pk, Segment.sort_key(record.trip_id or "", record.segment_id or "")))
    return keys


def missing_images_view(missing: Sequence[TravelRecord], parents: Iterable[TravelRecord] = ()) -> MissingImages:
    """Records without images, newest first, each with its parents' names (from `missing` or `parents`)."""
    by_sk = {r.sk: r for r in (*missing, *parents)}

    def title_of(trip_id: str | None) -> str | None:
        trip = by_sk.get(Trip.sort_key(trip_id or ""))
        return trip.title if isinstance(trip, Trip) else None

    def name_of(trip_id: str | None, segment_id: str | None) -> str | None:
        segment = by_sk.get(Segment.sort_key(trip_id or "", segment_id or ""))
        return segment.name if isinstance(segment, Segment) else None

    missing = _newest_first([r for r in missing if r.image_missing])
    trips = [
        {**_state(r), "title": r.title, "startDate": r.start_date, "endDate": r.end_date, "destination": r.destination}
        for r in missing
        if isinstance(r, Trip)
    ]
    segments = [
        {
            **_state(r),
            "name": r.name,
            "tripId": r.trip_id,
            "tripTitle": title_of(r.trip_id),
            "startLocation": r.start_location,
            "endLocation": r.end_location,
        }
        for r in missing
        if isinstance(r, Segment)
    ]
    reservations = [
        {
            **_state(r),
            "name": r.name,
            "tripId": r.trip_id,
            "tripTitle": title_of(r.trip_id),
            "segmentId": r.segment_id,
            "segmentName": name_of(r.trip_id, r.segment_id),
            "type": r.reservation_type,
            "location": r.location,
            "startTime": r.start_time,
        }
        for r in missing
        if isinstance(r, Reservation)
    ]
    return MissingImages(trips, segments, reservations)


class RecoveryService:
    def __init__(
        self,
        records: RecordRepository,
        batches: BatchRepository,
        styles: StyleCatalog,
        queuer: Queuer,
        tasks: TaskQueue,
        index: IndexState,
        *,
        max_ids_per_request: int,
    ) -> None:
        self._records = records
        self._batches = batches
        self._styles = styles
        self._queuer = queuer
        self._tasks = tasks
        self._index = index
        self._max_ids = max_ids_per_request

    def missing_images(self, user_id: str) -> MissingImages:
        """Reads the user's missing records from the sparse index, then only the parents it must name."""
        if self._index.is_complete():
            missing = self._records.missing_for_user(user_id, from_index=True).records
            present = {(r.pk, r.sk) for r in missing}
            parents = list(self._records.get_many(parent_keys(missing) - present).values())
        else:  # one read of the user's partition holds the missing records and their parents alike
            parents = self._records.user_records(user_id)
            missing = [r for r in parents if r.image_missing]
        return missing_images_view(missing, parents)

    def queue(
        self, user_id: str, requested: Sequence[tuple[str, str]], *, selection: str, style_id: str | None
    ) -> QueueResult:
        """Queue the named records ("ids"), every missing one ("all") or every failed one ("failed").

        Everything is validated before anything is written. "all" and "failed" queue the first
        QUEUE_PAGE_SIZE records here and hand the rest to a fan-out task, so a request for 10,000
        records answers at once; its batch says `complete: false` until the task is done.
        """
        if selection == "ids" and not requested:
            raise BadRequestError(
                "no_records",
                'Name at least one record in tripIds, segmentIds or reservationIds, or send {"all": true}.',
            )
        if len(requested) > self._max_ids:
            raise BadRequestError("too_many_ids", f"At most {self._max_ids} ids per request; got {len(requested)}.")
        style = self._styles.resolve(style_id)

        next_key = None
        from_index = self._index.is_complete()
        if selection == "ids":
            candidates = self._find_requested(user_id, requested, from_index=from_index)
        else:
            page = self._records.missing_for_user(user_id, from_index=from_index, limit=QUEUE_PAGE_SIZE)
            candidates, next_key = page.records, page.next_key
            if selection == "failed":
                candidates = [r for r in candidates if is_failed(r)]

        batch_id = str(uuid.uuid4())
        self._batches.create(batch_id, owner=user_id, style_id=style.id)
        outcomes = {(o.type, o.id): o for o in self._queuer.queue(candidates, batch_id=batch_id, style_id=style.id)}
        if selection == "ids":
            # Unknown ids and other users' ids look the same: not_found, and nothing written for them.
            items = [outcomes.get(pair) or ItemOutcome(*pair, FAILED, "not_found") for pair in requested]
        else:
            items = list(outcomes.values())
        if next_key is not None:
            self._batches.mark_pending(batch_id)
            self._tasks.send(
                QueueMissingTask(
                    batch_id=batch_id,
                    user_id=user_id,
                    style_id=style.id,
                    selection=selection,
                    from_index=from_index,
                    start_key=next_key,
                )
            )
        self._record_metrics(items)
        logger.info("queued image jobs", extra={"batch_id": batch_id, "items": len(items), "fan_out": bool(next_key)})
        return QueueResult(batch_id, style.id, items, complete=next_key is None)

    def _find_requested(
        self, user_id: str, requested: Sequence[tuple[str, str]], *, from_index: bool
    ) -> list[TravelRecord]:
        """The requested records of this user, in request order. The sparse index (when complete)
        answers for records missing images; only ids it does not hold (images present, or not the
        user's) cost a read of the user's partition, to tell "has_image" from "not_found"."""
        found: dict[tuple[str, str], TravelRecord] = {}
        if from_index:
            found = {(r.kind.label, r.id): r for r in self._records.missing_for_user(user_id, from_index=True).records}
        if any(pair not in found for pair in requested):
            for record in self._records.user_records(user_id):
                found.setdefault((record.kind.label, record.id), record)
        return [found[pair] for pair in requested if pair in found]

    def progress(self, user_id: str, batch_id: str) -> BatchProgress:
        batch = self._batches.get(batch_id)
        if batch is None or batch.user_id != user_id:
            raise NotFoundError(f"No batch {batch_id!r}.")
        return BatchProgress.of(batch)

    def styles(self) -> list[PromptStyle]:
        return self._styles.all()

    @staticmethod
    def _record_metrics(items: list[ItemOutcome]) -> None:
        counts = Counter(item.outcome for item in items)
        metrics.add_metric(name="JobsQueued", unit=MetricUnit.Count, value=counts["queued"])
        metrics.add_metric(name="JobsSkipped", unit=MetricUnit.Count, value=counts["skipped"])
