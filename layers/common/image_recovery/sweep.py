"""The scheduled sweep: queue every record that is missing its image and that nobody is working on."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from aws_lambda_powertools.metrics import MetricUnit

from image_recovery.batches import BatchRepository
from image_recovery.index_state import IndexState
from image_recovery.indexing import IndexChange, plain, reconcile, scan_segment
from image_recovery.models import TravelRecord
from image_recovery.observability import logger, metrics
from image_recovery.queueing import Queuer, is_stuck, skip_reason
from image_recovery.repository import RecordRepository, iso_utc, utc_now
from image_recovery.styles import StyleCatalog

SWEEP_OWNER = "system:sweep"


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
        batches: BatchRepository,
        styles: StyleCatalog,
        queuer: Queuer,
        index: IndexState,
        *,
        travel_table: str,
        max_jobs: int,
        segments: int,
        stuck_after: timedelta,
    ) -> None:
        self._records = records
        self._batches = batches
        self._styles = styles
        self._queuer = queuer
        self._index = index
        self._travel_table = travel_table
        self._max_jobs = max_jobs
        self._segments = segments
        self._stuck_after = stuck_after

    def run(self, time_is_up: Callable[[], bool] = lambda: False) -> SweepReport:
        """`time_is_up` says when to stop scanning and queue what was found (the Lambda's time is running out)."""
        stale_before = iso_utc(datetime.now(UTC) - self._stuck_after)
        candidates, capped, failed_segments = self._find(stale_before, time_is_up)
        style = self._styles.default()
        batch_id = f"sweep-{uuid.uuid4()}"
        self._batches.create(batch_id, owner=SWEEP_OWNER, style_id=style.id)
        stuck = sum(is_stuck(record, stale_before) for record in candidates)  # before queueing changes them
        outcomes = self._queuer.queue(candidates, batch_id=batch_id, style_id=style.id, stale_before=stale_before)
        counts = Counter(o.outcome for o in outcomes)
        report = SweepReport(
            batch_id, len(candidates), stuck, counts["queued"], counts["skipped"], counts["failed"], capped
        )
        metrics.add_metric(name="SweepMissingFound", unit=MetricUnit.Count, value=report.found)
        metrics.add_metric(name="JobsQueued", unit=MetricUnit.Count, value=report.queued)
        logger.info("sweep finished", extra=report.as_dict())
        if failed_segments:
            metrics.add_metric(name="SweepSegmentsFailed", unit=MetricUnit.Count, value=len(failed_segments))
            raise SweepIncomplete(f"segments {failed_segments} of {self._segments} could not be scanned; {report}")
        return report

    def _find(self, stale_before: str, time_is_up: Callable[[], bool]) -> tuple[list[TravelRecord], bool, list[int]]:
        """Scan all segments in parallel, up to the per-run cap.

        With a complete sparse index, only the index (missing records only) is scanned and each segment
        stops at the cap. Without one, the whole table is scanned, as DESIGN's sweep does: every record
        has its index attributes repaired on the way, the cap limits only what is queued, and a scan
        that reached the end completes the index if the stream was live when it began. A scan cut short
        by the clock still queues what it found; the repair scan (resumable) covers tables that large.
        A segment that fails (an AWS fault the SDK's retries did not absorb) is returned by number; the
        others' candidates are still queued.
        """
        found: list[TravelRecord] = []
        lock = threading.Lock()
        full = threading.Event()
        cut_short = threading.Event()

        def take(record: TravelRecord) -> bool:
            """Keep a candidate while there is room; False once the cap is reached."""
            with lock:
                if len(found) >= self._max_jobs:
                    full.set()
                    return False
                found.append(record)
                return True

        def scan_index(segment: int) -> None:
            for record in self._records.scan_queueable(segment, self._segments, stale_before=stale_before):
                if not take(record):
                    return

        def scan_table(segment: int) -> None:
            for items, next_key in scan_segment(self._travel_table, segment, self._segments):
                for raw in items:
                    if reconcile(plain(raw)) is IndexChange.NOT_A_RECORD:
                        continue
                    record = TravelRecord.from_raw_data(raw)
                    if record.image_missing and skip_reason(record, stale_before) is None:
                        take(record)
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
        return found, full.is_set(), sorted(failed)
