"""What the HTTP API does for a signed-in user, free of HTTP: list, queue, follow progress."""

from __future__ import annotations

import base64
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from image_recovery.batches import BatchProgress, BatchRepository
from image_recovery.errors import BadRequestError, NotFoundError, OverBudget
from image_recovery.index_state import IndexState
from image_recovery.item_size import READ_UNIT_BYTES
from image_recovery.models import IN_FLIGHT, Reservation, Segment, TravelRecord, Trip, is_failed
from image_recovery.observability import logger
from image_recovery.queueing import FAILED, ItemOutcome, Queuer
from image_recovery.repository import TRIP_TREE, Page, RecordRepository, iso_utc
from image_recovery.spending import BudgetStatus, DailySpend
from image_recovery.styles import PromptStyle, StyleCatalog
from image_recovery.tasks import QUEUE_PAGE_SIZE, QueueMissingTask, TaskQueue

LISTING, QUEUEING = "listing", "queueing"  # where a malformed record was met (MalformedRecords' dimension)
TEXT_LIMIT = 200  # characters of a title, a name or another descriptive attribute in the listing
STAMP_LIMIT = 64  # characters of a date or time attribute as the host wrote it
URL_LIMIT = 2048  # characters of an imageUrl in GET /images (a longer one is no usable URL)
PAGE_BYTES_LIMIT = 1_000_000  # the JSON of one listing page stays under 1 MB, whatever the records hold
DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE = 100, 500
# A listing first reads this many items of the user's trip tree (one Query). A partition that ends within them
# is answered from that read alone, for what a Query of the partition costs; past it, the listing takes the index
# (or reads on, where missing records are dense: read_on_items) and the probe is what the choice cost: about 7.5
# read units at the 300-byte records of the benchmark's data (docs/benchmark.md, "Listing cost in read units").
PARTITION_PROBE_ITEMS = 200
_CURSOR_VERSION = 1
_MAX_KEY_BYTES = 1024  # DynamoDB's limit for a sort key value


def cut(text: str | None, limit: int = TEXT_LIMIT) -> str | None:
    """At most `limit` characters, the last one "…" when something was cut."""
    if text is None or len(text) <= limit:
        return text
    return text[: limit - 1] + "…"


@dataclass(frozen=True)
class MissingImages:
    """One page of the listing (DESIGN §3)."""

    count: int  # every missing record of the user, not only this page's
    trips: list[dict]
    segments: list[dict]
    reservations: list[dict]
    next_cursor: str | None = None


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


Position = tuple[str, str]  # (sparse-index sort value, SK): where a record stands in newest-first order


def position(record: TravelRecord, *, from_index: bool = False) -> Position:
    """Where the record stands. From the index: its index attribute, the order the index answers in (and the
    key a next page starts after). Otherwise: computed from its createdAt, whatever a stale attribute says."""
    sort = (record.image_missing_sort or record.missing_sort) if from_index else record.missing_sort
    return sort, record.sk


def encode_cursor(user_id: str, after: Position, count: int) -> str:
    payload = {"v": _CURSOR_VERSION, "u": user_id, "s": after[0], "k": after[1], "c": count}
    return base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, user_id: str) -> tuple[Position, int]:
    """The position a cursor stands for and the count of its listing; a 400 for anything that is not a
    cursor issued to this user."""
    try:
        payload = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        sort, sk, count = payload["s"], payload["k"], payload["c"]
        valid = (
            payload["v"] == _CURSOR_VERSION
            and payload["u"] == user_id
            and isinstance(sort, str)
            and isinstance(sk, str)
            and type(count) is int
            and count >= 0
            and sk.startswith(TRIP_TREE)
            and 0 < len(sort.encode()) <= _MAX_KEY_BYTES
            and 0 < len(sk.encode()) <= _MAX_KEY_BYTES
        )
    except (ValueError, TypeError, KeyError, UnicodeError, AttributeError):
        valid = False
    if not valid:
        raise BadRequestError("invalid_cursor", "The cursor is not one this API gave you; start without one.")
    return (sort, sk), count


def parent_keys(records: Iterable[TravelRecord]) -> set[tuple[str, str]]:
    """Keys of the trips and segments that the records' context names (from their own keys)."""
    keys: set[tuple[str, str]] = set()
    for record in records:
        path = record.key_path
        if isinstance(record, Segment | Reservation):
            keys.add((record.pk, Trip.sort_key(path.trip_id)))
        if isinstance(record, Reservation):
            keys.add((record.pk, Segment.sort_key(path.trip_id, path.segment_id or "")))
    return keys


def _listed(record: TravelRecord, parents: dict[str, TravelRecord]) -> dict:
    """One record as the listing shows it, every text cut to its documented length."""

    def named(sk: str, kind: type[Trip] | type[Segment]) -> str | None:
        parent = parents.get(sk)
        return cut(parent.display_name) if isinstance(parent, kind) else None

    path = record.key_path
    item = {
        "id": record.id,
        "createdAt": cut(record.created_at, STAMP_LIMIT),
        "imageStatus": record.effective_status.value,
        "imageError": record.image_error,
        "imageUpdatedAt": record.image_updated_at,
    }
    if isinstance(record, Trip):
        return {
            **item,
            "title": cut(record.title),
            "startDate": cut(record.start_date, STAMP_LIMIT),
            "endDate": cut(record.end_date, STAMP_LIMIT),
            "destination": cut(record.destination),
        }
    trip = {"tripId": path.trip_id, "tripTitle": named(Trip.sort_key(path.trip_id), Trip)}
    if isinstance(record, Segment):
        return {
            **item,
            "name": cut(record.name),
            **trip,
            "startLocation": cut(record.start_location),
            "endLocation": cut(record.end_location),
        }
    segment_id = path.segment_id or ""
    return {
        **item,
        "name": cut(record.name),
        **trip,
        "segmentId": segment_id,
        "segmentName": named(Segment.sort_key(path.trip_id, segment_id), Segment),
        "type": cut(record.reservation_type, STAMP_LIMIT),
        "location": cut(record.location),
        "startTime": cut(record.start_time, STAMP_LIMIT),
    }


def missing_images_page(
    user_id: str,
    page: Sequence[TravelRecord],
    parents: Iterable[TravelRecord],
    *,
    count: int,
    more: bool,
    from_index: bool,
) -> MissingImages:
    """Group a newest-first page by kind, each record with its parents' names, within PAGE_BYTES_LIMIT.

    A page whose records would outgrow the limit ends early; its cursor then continues after the last
    record it holds, so nothing is skipped.
    """
    by_sk = {r.sk: r for r in (*page, *parents)}
    groups: dict[type[TravelRecord], list[dict]] = {Trip: [], Segment: [], Reservation: []}
    size, last = 0, None
    for record in page:
        item = _listed(record, by_sk)
        size += len(json.dumps(item)) + 1  # ASCII-escaped: the most bytes its JSON can take
        if size > PAGE_BYTES_LIMIT and last is not None:
            more = True
            break
        groups[type(record)].append(item)
        last = record
    next_cursor = (
        encode_cursor(user_id, position(last, from_index=from_index), count) if more and last is not None else None
    )
    return MissingImages(count, groups[Trip], groups[Segment], groups[Reservation], next_cursor)


def read_on_items(probe: Page, *, missing: int, parents: int) -> int:
    """How many more items of a partition past its probe to read in place of fetching `parents` by key; 0 to
    fetch them. A parent costs a whole 4 KB block in a BatchGetItem, a record read on only its own bytes (the
    probe's mean). Worth it when the rest of the partition, estimated from the probe's share of the `missing`
    records, costs less than the parents; the reading on stops where it would cost what they cost, so a
    wrong estimate costs at most twice the parents."""
    seen = sum(r.image_missing for r in probe.records)
    if not (seen and parents and probe.items and probe.bytes):
        return 0
    affordable = parents * READ_UNIT_BYTES * probe.items // probe.bytes
    estimated_rest = max(0, missing - seen) * probe.items / seen
    return affordable if estimated_rest < affordable else 0


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
        stuck_after: timedelta,
        spend: DailySpend,
    ) -> None:
        self._records = records
        self._batches = batches
        self._styles = styles
        self._queuer = queuer
        self._tasks = tasks
        self._index = index
        self._max_ids = max_ids_per_request
        self._stuck_after = stuck_after
        self._spend = spend

    def missing_images(
        self, user_id: str, *, limit: int = DEFAULT_PAGE_SIZE, cursor: str | None = None
    ) -> MissingImages:
        """One page of the user's missing records, newest first across kinds, with the count of all of them.

        The plan is chosen by what the user's partition holds, which DynamoDB tells only by reading it: first
        PARTITION_PROBE_ITEMS items of the trip tree. A partition that ends within them (most users') is
        answered from that read alone. A larger one, with a complete sparse index: the page's records and the
        count from the index, and the parents the page names that the probe did not read, by key; or, when the
        index listing fits one page and the rest of the partition looks cheaper to read than those parents
        (`read_on_items`), the rest of it. Without a complete index: the rest of the trip tree.
        """
        after, counted = decode_cursor(cursor, user_id) if cursor else (None, None)
        probe = self._records.trip_tree(user_id, where=LISTING, limit=PARTITION_PROBE_ITEMS)
        partition = probe.records if probe.next_key is None else None
        if partition is None and self._index.is_complete():
            page, more = self._records.missing_after(user_id, where=LISTING, after=after, limit=limit)
            # One page that holds everything is its own count; a longer listing is counted once, on its first
            # page, and the cursor carries that count on (a snapshot, like the pages themselves).
            count = counted if counted is not None else self._records.count_missing(user_id) if more else len(page)
            known = [*probe.records, *page]
            wanted = parent_keys(page) - {(r.pk, r.sk) for r in known}
            budget = read_on_items(probe, missing=count, parents=len(wanted)) if after is None and not more else 0
            if budget:
                rest = self._records.trip_tree(user_id, where=LISTING, limit=budget, start_key=probe.next_key)
                if rest.next_key is None:
                    partition = [*probe.records, *rest.records]
                else:  # the estimate was short: what was read on still names some of the parents
                    known += rest.records
                    wanted -= {(r.pk, r.sk) for r in rest.records}
            if partition is None:
                parents = [*known, *self._records.get_many(wanted, where=LISTING).values()]
                return missing_images_page(user_id, page, parents, count=count, more=more, from_index=True)
        if partition is None:
            partition = [*probe.records, *self._records.user_records(user_id, where=LISTING, start_key=probe.next_key)]
        missing = sorted((r for r in partition if r.image_missing), key=position, reverse=True)
        count = len(missing)
        if after is not None:
            missing = [r for r in missing if position(r) < after]
        page, more = missing[:limit], len(missing) > limit
        return missing_images_page(user_id, page, partition, count=count, more=more, from_index=False)

    def queue(
        self,
        user_id: str,
        requested: Sequence[tuple[str, str]],
        *,
        selection: str,
        style_id: str | None,
        regenerate: bool = False,
        over_budget_confirmed: bool = False,
    ) -> QueueResult:
        """Queue the named records ("ids"), every missing one ("all") or every failed one ("failed").

        Everything is validated before anything is written. "all" and "failed" queue the first
        QUEUE_PAGE_SIZE records here and hand the rest to a fan-out task, so a request for 10,000
        records answers at once; its batch says `complete: false` until the task is done. "all" leaves
        out records that failed for good; naming them (by id, or with "failed") queues them again.

        `regenerate` (with ids only) queues named records that have an image too; the image stays until the new
        one is stored. A regeneration shows no progress in the missing index the sweep reads, so a request is
        what takes over one that has shown no progress for `stuck_after`: the person asked again, so unlike the
        sweep it does not wait for the job queue to empty (its earlier message, if it comes, does nothing).

        With a daily image budget, a request for more images than the day has left is refused (OverBudget)
        unless `over_budget_confirmed`: then the jobs over the budget wait for the next day.
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
            candidates = self._find_requested(user_id, requested)
        else:
            page = self._records.missing_page(user_id, from_index=from_index, where=QUEUEING, limit=QUEUE_PAGE_SIZE)
            candidates, next_key = page.records, page.next_key
            if selection == "failed":
                candidates = [r for r in candidates if is_failed(r)]

        if self._spend.policy.capped and not over_budget_confirmed:
            images = sum(regenerate or (r.wants_image and r.image_status not in IN_FLIGHT) for r in candidates)
            if next_key is not None:
                images += self._queueable_beyond(user_id, next_key, from_index=from_index, selection=selection)
            self._refuse_over_budget(images)

        batch_id = self._queuer.open_batch(user_id, style.id)
        stale_before = iso_utc(datetime.now(UTC) - self._stuck_after) if regenerate else None
        outcomes = list(
            self._queuer.queue(
                candidates,
                batch_id=batch_id,
                style_id=style.id,
                named=selection != "all",
                regenerate=regenerate,
                stale_before=stale_before,
            )
        )
        if selection == "ids":
            # Unknown ids and other users' ids look the same: not_found, and nothing written for them. An id
            # that two records share (segments of different trips) answers for each of them.
            by_pair: dict[tuple[str, str], list[ItemOutcome]] = {}
            for outcome in outcomes:
                by_pair.setdefault((outcome.type, outcome.id), []).append(outcome)
            items = [o for pair in requested for o in by_pair.get(pair) or [ItemOutcome(*pair, FAILED, "not_found")]]
        else:
            items = outcomes
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
        logger.info("queued image jobs", extra={"batch_id": batch_id, "items": len(items), "fan_out": bool(next_key)})
        return QueueResult(batch_id, style.id, items, complete=next_key is None)

    def _queueable_beyond(self, user_id: str, start_key: dict, *, from_index: bool, selection: str) -> int:
        """How many of the user's missing records after the request's first page its fan-out would queue, about:
        those not in flight ("failed": those that failed). From the sparse index, reading only the index's keys
        for "all"; without the index (or for "failed"), by reading the rest as the fan-out will."""
        if from_index and selection == "all":
            return max(0, self._records.count_missing(user_id) - QUEUE_PAGE_SIZE)
        count = 0
        while start_key is not None:
            page = self._records.missing_page(
                user_id, from_index=from_index, where=QUEUEING, limit=QUEUE_PAGE_SIZE, start_key=start_key
            )
            if selection == "failed":
                count += sum(is_failed(r) for r in page.records)
            else:
                count += sum(r.image_status not in IN_FLIGHT for r in page.records)
            start_key = page.next_key
        return count

    def _refuse_over_budget(self, images: int) -> None:
        """OverBudget when the request would queue more images than the day's budget has left (an estimate from
        what was read: the records that want an image, leaving out those already in flight)."""
        status = self._spend.status()
        remaining = status.remaining_today or 0
        if images > remaining:
            raise OverBudget(images, status, self._spend.policy.estimate(images))

    def images(self, user_id: str, requested: Sequence[tuple[str, str]]) -> list[dict]:
        """The images of the named records of this user that have one (the panel's "generated in this session"
        strip): unknown ids, other users' and records still without an image (or with a URL no browser takes,
        longer than URL_LIMIT) are left out."""
        return [
            {"type": r.kind.label, "id": r.id, "imageUrl": r.image_url}
            for r in self._find_requested(user_id, requested)
            if r.image_url and len(r.image_url) <= URL_LIMIT
        ]

    def budget(self) -> BudgetStatus:
        """The day's image budget and what is left of it, with the estimated cost of one image."""
        return self._spend.status()

    def _find_requested(self, user_id: str, requested: Sequence[tuple[str, str]]) -> list[TravelRecord]:
        """The requested records of this user, in request order: one read of the user's trip tree, filtered
        by id in DynamoDB (segment and reservation keys hold their parents' ids, which a request does not)."""
        found: dict[tuple[str, str], list[TravelRecord]] = {}
        for record in self._records.user_records(user_id, where=QUEUEING, ids=[i for _, i in requested]):
            found.setdefault((record.kind.label, record.id), []).append(record)
        return [record for pair in requested for record in found.get(pair, [])]

    def progress(self, user_id: str, batch_id: str) -> BatchProgress:
        batch = self._batches.get(batch_id)
        if batch is None or batch.user_id != user_id:
            raise NotFoundError(f"No batch {batch_id!r}.")
        return BatchProgress.of(batch)

    def styles(self) -> list[PromptStyle]:
        return self._styles.all()
