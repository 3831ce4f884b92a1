"""The travel table's stream: keep the sparse index right for every writer, remove the images of records the
host deleted or gave another image, and optionally queue new records."""

from __future__ import annotations

from collections import Counter
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from image_recovery.batch_items import partial_batch_response, records_of, stream_sequence_number
from image_recovery.cleanup import ImageCleaner
from image_recovery.index_state import IndexState
from image_recovery.indexing import reconcile
from image_recovery.models import TravelRecord
from image_recovery.observability import logger, metrics
from image_recovery.queueing import Queuer
from image_recovery.styles import StyleCatalog

# No `sub` holds "#" (the API refuses such tokens), so no user can ever read the service's own batches.
STREAM_OWNER = "#new-records"


class StreamIndexer:
    def __init__(
        self,
        styles: StyleCatalog,
        queuer: Queuer,
        index: IndexState,
        cleaner: ImageCleaner,
        *,
        queue_new_records: bool,
    ) -> None:
        self._index = index
        self._cleaner = cleaner
        self._styles = styles
        self._queuer = queuer
        self._queue_new_records = queue_new_records

    def handle(self, event: dict, context: LambdaContext) -> dict[str, Any]:
        self._index.note_stream_active()
        self._changes: Counter[str] = Counter()
        self._new: list[TravelRecord] = []
        response = partial_batch_response(records_of(event), self._record, stream_sequence_number)
        if self._new:
            self._queue(self._new)
        metrics.add_metric(
            name="IndexChanges", unit=MetricUnit.Count, value=self._changes["added"] + self._changes["removed"]
        )
        logger.info("stream batch indexed", extra=dict(self._changes))
        return response

    def _record(self, record: dict) -> None:
        change = record.get("dynamodb") or {}
        new_image = change.get("NewImage")
        if not new_image:  # a deletion: nothing left to index, but its images are nobody's now
            if self._cleaner.record_deleted(change.get("Keys") or {}):
                self._changes["deleted"] += 1
            return
        reconciled = reconcile(new_image, "stream")
        self._changes[reconciled.change] += 1
        found = reconciled.record
        if found is not None and self._cleaner.image_replaced(found):
            self._changes["image_replaced"] += 1
        elif found is not None and self._cleaner.adopt_copy(found):
            self._changes["copy_adopted"] += 1
        is_new_record = record.get("eventName") == "INSERT"
        if self._queue_new_records and is_new_record and found is not None and found.image_missing:
            self._new.append(found)

    def _queue(self, records: list[TravelRecord]) -> None:
        """New records without an image get a job at once instead of waiting for the sweep. The record may
        be gone by now (inserted and deleted in one stream batch): queueing never re-creates it."""
        style = self._styles.default()
        batch_id = self._queuer.open_batch(STREAM_OWNER, style.id, prefix="new-")
        list(self._queuer.queue(records, batch_id=batch_id, style_id=style.id, named=False))
