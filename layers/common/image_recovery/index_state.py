"""When may the sparse index be trusted to hold every record that is missing its image?

Only when the table has the index at all (a host's table may not: DescribeTable says, checked on first
use and again every few minutes), and once the stream function has been live and a full scan that started
after that moment has reconciled every record: from then on the stream sees every write. Until then (a
fresh deployment onto an existing table, a table without the index or without a stream) listing,
queueing and the sweep read the table itself, which is always right and costs more.
"""

from __future__ import annotations

import time
import uuid

from image_recovery import aws
from image_recovery.models import MISSING_INDEX_NAME, ServiceState
from image_recovery.observability import logger
from image_recovery.repository import conditional_update, utc_now

INDEX_KEY = "service#index"
INDEX_CHECK_SECONDS = 600  # how long a container trusts what DescribeTable said about the index


def table_has_active_index(travel_table: str) -> bool:
    """Whether the travel table has the MissingImages index, built and serving (not still backfilling)."""
    try:
        table = aws.client("dynamodb").describe_table(TableName=travel_table)["Table"]
    except Exception:
        logger.exception("could not describe the travel table; reading it without the index")
        return False
    return any(
        index["IndexName"] == MISSING_INDEX_NAME
        and index.get("IndexStatus") == "ACTIVE"
        and not index.get("Backfilling")
        for index in table.get("GlobalSecondaryIndexes", [])
    )


class IndexState:
    def __init__(self, travel_table: str) -> None:
        self._travel_table = travel_table
        self._complete = False
        self._stream_noted = False
        self._has_index: bool | None = None
        self._checked_at = 0.0

    def has_index(self) -> bool:
        """The table has the index now (asked again after INDEX_CHECK_SECONDS, so `make attach` is seen)."""
        if self._has_index is None or time.monotonic() - self._checked_at > INDEX_CHECK_SECONDS:
            self._has_index = table_has_active_index(self._travel_table)
            self._checked_at = time.monotonic()
        return self._has_index

    def note_stream_active(self) -> None:
        """Called by the stream function: from the first time on, every write reaches the index."""
        if not self._stream_noted:
            conditional_update(
                ServiceState(INDEX_KEY),
                [ServiceState.stream_active_since.set(utc_now())],
                ServiceState.stream_active_since.does_not_exist(),
            )
            self._stream_noted = True

    def is_complete(self) -> bool:
        """The index exists and is known to hold every missing record (the latter, once true, stays true)."""
        if not self.has_index():
            return False
        if not self._complete:
            try:
                state = ServiceState.get(INDEX_KEY, consistent_read=True)
            except ServiceState.DoesNotExist:
                return False
            self._complete = state.index_complete_at is not None
        return self._complete

    def mark_complete(self, scan_started: str) -> bool:
        """A full scan that started at `scan_started` has reconciled every record. It completes the index
        only if the stream was already live then (otherwise writes during the scan could be missed)."""
        condition = ServiceState.stream_active_since.exists() & (ServiceState.stream_active_since <= scan_started)
        return conditional_update(ServiceState(INDEX_KEY), [ServiceState.index_complete_at.set(utc_now())], condition)

    def start_repair(self, segments: int) -> str:
        run_id = f"service#repair#{uuid.uuid4()}"
        ServiceState(run_id, started_at=utc_now(), segments_total=segments, segments_done=0).save()
        return run_id

    def segment_repaired(self, run_id: str) -> bool:
        """Count one finished segment of a repair run; the last one completes the index. True when it did."""
        run = ServiceState(run_id)
        run.update(actions=[ServiceState.segments_done.add(1)])
        if run.segments_done is not None and run.segments_total is not None and run.segments_done >= run.segments_total:
            return self.mark_complete(run.started_at or "")
        return False
