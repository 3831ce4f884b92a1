"""The scheduled sweep: queue every record that is missing its image and that nobody is working on."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from aws_lambda_powertools.metrics import MetricUnit

from image_recovery.batches import BatchRepository
from image_recovery.models import TravelRecord
from image_recovery.observability import logger, metrics
from image_recovery.queueing import Queuer, is_stuck
from image_recovery.repository import RecordRepository, iso_utc
from image_recovery.styles import StyleCatalog

SWEEP_OWNER = "system:sweep"


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
        *,
        max_jobs: int,
        segments: int,
        stuck_after: timedelta,
    ) -> None:
        self._records = records
        self._batches = batches
        self._styles = styles
        self._queuer = queuer
        self._max_jobs = max_jobs
        self._segments = segments
        self._stuck_after = stuck_after

    def run(self) -> SweepReport:
        stale_before = iso_utc(datetime.now(UTC) - self._stuck_after)
        candidates, capped = self._find(stale_before)
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
        return report

    def _find(self, stale_before: str) -> tuple[list[TravelRecord], bool]:
        """Scan all segments in parallel; stop every segment once the per-run cap is reached."""
        found: list[TravelRecord] = []
        lock = threading.Lock()
        full = threading.Event()

        def scan(segment: int) -> None:
            for record in self._records.scan_queueable(segment, self._segments, stale_before=stale_before):
                with lock:
                    if len(found) >= self._max_jobs:
                        full.set()
                        return
                    found.append(record)

        with ThreadPoolExecutor(max_workers=self._segments) as pool:
            list(pool.map(scan, range(self._segments)))
        return found, full.is_set()
