"""The scheduled sweep: queue every record that is missing its image and that nobody is working on."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import IntEnum
from typing import TYPE_CHECKING

from aws_lambda_powertools.metrics import MetricUnit

from image_recovery.index_state import IndexState
from image_recovery.indexing import reconcile, scan_segment
from image_recovery.jobs import ImageJob
from image_recovery.models import IN_FLIGHT, ImageStatus, TravelRecord
from image_recovery.observability import logger, metrics
from image_recovery.queueing import JobQueue, QueueDepth, Queuer, failed_for_good, is_stuck
from image_recovery.repository import RecordRepository, iso_utc, utc_now
from image_recovery.styles import StyleCatalog

if TYPE_CHECKING:
    from image_recovery.model_lifecycle import ModelLifecycle

# No `sub` holds "#" (the API refuses such tokens), so no user can ever read the service's own batches.
SWEEP_OWNER = "#sweep"
WHERE = "sweep"


@dataclass(frozen=True)
class RetryPolicy:
    """How the sweep treats records whose jobs failed for a transient reason (DESIGN §4): queued again at
    most `limit` times, the n-th time no sooner than `delay` × 2^(n-1) after the failure."""

    limit: int
    delay: timedelta

    def due(self, record: TravelRecord, now: datetime) -> bool:
        failures = max(int(record.image_failures or 0), 1)
        if failures > self.limit:
            return False
        if record.image_updated_at is None:
            return True
        return record.image_updated_at <= iso_utc(now - self.delay * 2 ** (failures - 1))


class Tier(IntEnum):
    """The order in which the per-run cap is given out: records never tried come first (DESIGN §4)."""

    NEVER_TRIED = 0
    STUCK = 1
    RETRY = 2


def sweep_tier(record: TravelRecord, stale_before: str, now: datetime, retries: RetryPolicy) -> Tier | None:
    """Which tier the sweep queues a record in, or None if the sweep leaves it alone."""
    if not record.image_missing:
        return None
    if is_stuck(record, stale_before):
        return Tier.STUCK
    if record.image_status in IN_FLIGHT:
        return None
    if record.image_status == ImageStatus.FAILED:
        if failed_for_good(record) or not retries.due(record, now):
            return None
        return Tier.RETRY
    return Tier.NEVER_TRIED


def lost_before(now: datetime, stuck_after: timedelta, queue: QueueDepth) -> str:
    """The cut-off for stuck jobs: an in-flight record with no progress since then has lost its message.

    No progress for `stuck_after` alone does not prove it: a job may wait behind a long backlog. But a queue
    that holds no message at all holds none of it, and a queue keeps no message longer than its retention
    period. So while the queue holds anything, only records older than that are taken over.
    """
    return iso_utc(now - (stuck_after if queue.messages == 0 else max(stuck_after, queue.retention)))


class SweepIncomplete(Exception):
    """Some segments could not be scanned: what the others found was queued, the rest waits for a retry.

    Raised after queueing, so the run counts as a function error (Lambda retries a scheduled run twice,
    and the next schedule comes anyway); queueing again is harmless, each record is queued once.
    """


@dataclass(frozen=True)
class SweepReport:
    batch_id: str
    found: int
    stuck: int
    queued: int
    skipped: int
    failed: int
    capped: bool

    def as_dict(self) -> dict:
        return self.__dict__.copy()


class Sweeper:
    def __init__(
        self,
        records: RecordRepository,
        styles: StyleCatalog,
        queuer: Queuer,
        queue: JobQueue,
        index: IndexState,
        *,
        travel_table: str,
        max_jobs: int,
        segments: int,
        stuck_after: timedelta,
        retries: RetryPolicy,
        lifecycle: ModelLifecycle | None = None,
    ) -> None:
        self._records = records
        self._styles = styles
        self._queuer = queuer
        self._queue = queue
        self._index = index
        self._travel_table = travel_table
        self._max_jobs = max_jobs
        self._segments = segments
        self._stuck_after = stuck_after
        self._retries = retries
        self._lifecycle = lifecycle  # the worker's Bedrock models, checked once a day

    def run(self, time_is_up: Callable[[], bool] = lambda: False) -> SweepReport:
        """`time_is_up` says when to stop scanning and queue what was found (the Lambda's time is running out)."""
        if self._lifecycle is not None:
            self._lifecycle.check_daily()
        now = datetime.now(UTC)
        stale_before = lost_before(now, self._stuck_after, self._queue.depth())
        candidates, capped, failed_segments = self._find(stale_before, now, time_is_up)
        style = self._styles.default()
        batch_id = self._queuer.open_batch(SWEEP_OWNER, style.id, prefix="sweep-")
        stuck = sum(is_stuck(record, stale_before) for record in candidates)  # before queueing changes them
        # a lost job is sent again as itself; a record in flight that names no usable job gets a new one
        lost: list[tuple[TravelRecord, ImageJob]] = []
        rest: list[TravelRecord] = []
        for record in candidates:
            job = self._queuer.resendable(record) if is_stuck(record, stale_before) else None
            if job is None:
                rest.append(record)
            else:
                lost.append((record, job))
        counts = Counter(o.outcome for o in self._queuer.resend(lost))
        queued = self._queuer.queue(rest, batch_id=batch_id, style_id=style.id, stale_before=stale_before, named=False)
        counts.update(o.outcome for o in queued)
        report = SweepReport(
            batch_id, len(candidates), stuck, counts["queued"], counts["skipped"], counts["failed"], capped
        )
        metrics.add_metric(name="SweepMissingFound", unit=MetricUnit.Count, value=report.found)
        logger.info("sweep finished", extra=report.as_dict())
        if failed_segments:
            metrics.add_metric(name="SweepSegmentsFailed", unit=MetricUnit.Count, value=len(failed_segments))
            raise SweepIncomplete(f"segments {failed_segments} of {self._segments} could not be scanned; {report}")
        return report

    def _find(
        self, stale_before: str, now: datetime, time_is_up: Callable[[], bool]
    ) -> tuple[list[TravelRecord], bool, list[int]]:
        """Scan all segments in parallel and pick up to the per-run cap, never-tried records first.

        With a complete sparse index, only the index (missing records only) is scanned, and the scan stops
        once the cap is filled with never-tried records. Without one, the whole table is scanned, as
        DESIGN's sweep does: every record has its index attributes repaired on the way, and a scan that
        reached the end completes the index if the stream was live when it began. A scan cut short by the
        clock still queues what it found; the repair scan (resumable) covers tables that large. A segment
        that fails (an AWS fault the SDK's retries did not absorb) is returned by number; the others'
        candidates are still queued. Malformed items are reported and skipped.
        """
        tiers: dict[Tier, list[TravelRecord]] = {tier: [] for tier in Tier}
        lock = threading.Lock()
        full = threading.Event()  # the cap is filled with never-tried records: nothing can displace them
        overflow = threading.Event()  # some tier held more than fits
        cut_short = threading.Event()

        def take(record: TravelRecord) -> bool:
            """Keep a candidate while its tier has room; False once never-tried records fill the cap."""
            tier = sweep_tier(record, stale_before, now, self._retries)
            if tier is None:
                return True
            with lock:
                if len(tiers[tier]) >= self._max_jobs:
                    overflow.set()
                else:
                    tiers[tier].append(record)
                if len(tiers[Tier.NEVER_TRIED]) >= self._max_jobs:
                    full.set()
            return not full.is_set()

        def scan_index(segment: int) -> None:
            for record in self._records.scan_missing(segment, self._segments, where=WHERE):
                if not take(record):
                    return

        def scan_table(segment: int) -> None:
            for items, next_key in scan_segment(self._travel_table, segment, self._segments):
                for raw in items:
                    found = reconcile(raw, WHERE).record
                    if found is not None:
                        take(found)
                if next_key and time_is_up():
                    cut_short.set()
                    return

        complete = self._index.is_complete()
        scan_one = scan_index if complete else scan_table
        failed: list[int] = []

        def scan(segment: int) -> None:
            try:
                scan_one(segment)
            except Exception:
                logger.exception("sweep segment failed", extra={"segment": segment})
                with lock:
                    failed.append(segment)

        started = utc_now()
        with ThreadPoolExecutor(max_workers=self._segments) as pool:
            list(pool.map(scan, range(self._segments)))
        if cut_short.is_set() or failed:
            logger.warning("full sweep did not reach the end of every segment", extra={"failed_segments": failed})
        elif not complete and self._index.mark_complete(started):
            logger.info("full sweep finished after the stream went live: the sparse index is complete")
        ranked = [record for tier in Tier for record in tiers[tier]]
        capped = full.is_set() or overflow.is_set() or len(ranked) > self._max_jobs
        return ranked[: self._max_jobs], capped, sorted(failed)
