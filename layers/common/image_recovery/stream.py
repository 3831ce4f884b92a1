"""The travel table's stream: keep the sparse index right for every writer, optionally queue new records."""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from image_recovery.batches import BatchRepository
from image_recovery.index_state import IndexState
from image_recovery.indexing import IndexChange, image_missing, reconcile
from image_recovery.models import IN_FLIGHT, TravelRecord
from image_recovery.observability import logger, metrics
from image_recovery.queueing import Queuer
from image_recovery.styles import StyleCatalog

STREAM_OWNER = "system:new-records"


class StreamIndexer:
    def __init__(
        self,
        batches: BatchRepository,
        styles: StyleCatalog,
        queuer: Queuer,
        index: IndexState,
        *,
        queue_new_records: bool,
    ) -> None:
        self._index = index
        self._batches = batches
        self._styles = styles
        self._queuer = queuer
        self._queue_new_records = queue_new_records
        self._processor = BatchProcessor(event_type=EventType.DynamoDBStreams, raise_on_entire_batch_failure=False)

    def handle(self, event: dict, context: LambdaContext) -> dict[str, Any]:
        self._index.note_stream_active()
        self._changes: Counter[str] = Counter()
        self._new: list[TravelRecord] = []
        response = process_partial_response(
            event=event, record_handler=self._record, processor=self._processor, context=context
        )
        if self._new:
            self._queue(self._new)
        metrics.add_metric(
            name="IndexChanges", unit=MetricUnit.Count, value=self._changes["added"] + self._changes["removed"]
        )
        logger.info("stream batch indexed", extra=dict(self._changes))
        return response

    def _record(self, record: DynamoDBRecord) -> None:
        new_image = record.dynamodb.new_image if record.dynamodb else None
        if not new_image:  # a deletion: nothing left to index
            return
        change = reconcile(new_image)
        self._changes[change] += 1
        is_new_record = record.event_name and record.event_name.name == "INSERT"
        if (
            self._queue_new_records
            and is_new_record
            and change != IndexChange.NOT_A_RECORD
            and image_missing(new_image)
            and new_image.get("imageStatus") not in IN_FLIGHT
        ):
            self._new.append(TravelRecord.from_raw_data(record.raw_event["dynamodb"]["NewImage"]))

    def _queue(self, records: list[TravelRecord]) -> None:
        """New records without an image get a job at once instead of waiting for the sweep."""
        style = self._styles.default()
        batch_id = f"new-{uuid.uuid4()}"
        self._batches.create(batch_id, owner=STREAM_OWNER, style_id=style.id)
        outcomes = Counter(o.outcome for o in self._queuer.queue(records, batch_id=batch_id, style_id=style.id))
        metrics.add_metric(name="JobsQueued", unit=MetricUnit.Count, value=outcomes["queued"])
