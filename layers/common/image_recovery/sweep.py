"""The scheduled sweep: queue every record that is missing its image and that nobody is working on."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from aws_lambda_powertools.metrics import MetricUnit

from image_recovery.batches import BatchRepository
from image_recovery.models import TravelRecord
from image_recovery.observability import logger, metrics
from image_recovery.queueing import Queuer
from image_recovery.repository import RecordRepository
from image_recovery.styles import StyleCatalog

SWEEP_OWNER = "system:sweep"


@dataclass(frozen=True)
class SweepReport:
    batch_id: str
    found: int
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
    ) -> None:
        self._records = records
        self._batches = batches
        self._styles = styles
        self._queuer = queuer
        self._max_jobs = max_jobs
        self._segments = segments

    def run(self) -> SweepReport:
        candidates, capped = self._find()
        style = self._styles.default()
        batch_id = f"sweep-{uuid.uuid4()}"
        self._batches.create(batch_id, owner=SWEEP_OWNER, style_id=style.id)
        counts = Counter(o.outcome for o in self._queuer.queue(candidates, batch_id=batch_id, style_id=style.id))
        report = SweepReport(batch_id, len(candidates), counts["queued"], counts["skipped"], counts["failed"], capped)
        metrics.add_metric(name="SweepMissingFound", unit=MetricUnit.Count, value=report.found)
        metrics.add_metric(name="JobsQueued", unit=MetricUnit.Count, value=report.queued)
        logger.info("sweep finished", extra=report.as_dict())
        return report

    def _find(self) -> tuple[list[TravelRecord], bool]:
        """Scan all segments in parallel; stop every segment once the per-run cap is reached."""
        found: list[TravelRecord] = []
        lock = threading.Lock()
        full = threading.Event()

        def scan(segment: int) -> None:
            for record in self._records.scan_queueable(segment, self._segments):
                with lock:
                    if len(found) >= self._max_jobs:
                        full.set()
                        return
                    found.append(record)

        with ThreadPoolExecutor(max_workers=self._segments) as pool:
            list(pool.map(scan, range(self._segments)))
        return found, full.is_set()
