"""Long work split into SQS-carried tasks, each resuming where the previous invocation stopped.

Three kinds: queueing every missing (or failed) record of one user, for users with more than one request
can handle at once; one segment of the full-table repair scan; and the repair run's audit of the image
bucket. A task runs until its Lambda is close to its timeout, then sends itself on with the key it
reached, so any amount of work is covered by a chain of short invocations.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from image_recovery.batches import BatchRepository
from image_recovery.cleanup import ImageCleaner
from image_recovery.index_state import IndexState
from image_recovery.indexing import IndexChange, reconcile, scan_segment
from image_recovery.messages import Message, rule
from image_recovery.models import is_failed
from image_recovery.observability import logger, metrics
from image_recovery.queueing import Queuer, chunked
from image_recovery.repository import RecordRepository

QUEUE_PAGE_SIZE = 100


@dataclass(frozen=True, kw_only=True)
class _Task(Message):
    version: int = rule(int, choices=(1,), default=1)
    start_key: dict[str, Any] | None = rule(dict, None, default=None)


@dataclass(frozen=True, kw_only=True)
class QueueMissingTask(_Task):
    kind: str = rule(str, choices=("queue-missing",), default="queue-missing")
    batch_id: str = rule(str)
    user_id: str = rule(str)
    style_id: str = rule(str)
    selection: str = rule(str, choices=("all", "failed"))
    from_index: bool = rule(bool)  # where the first page came from; the keys that follow only make sense there


@dataclass(frozen=True, kw_only=True)
class RepairSegmentTask(_Task):
    kind: str = rule(str, choices=("repair-segment",), default="repair-segment")
    run_id: str = rule(str)
    segment: int = rule(int, minimum=0)
    total_segments: int = rule(int, minimum=1)


@dataclass(frozen=True, kw_only=True)
class AuditImagesTask(_Task):
    kind: str = rule(str, choices=("audit-images",), default="audit-images")
    continuation_token: str | None = rule(str, None, default=None)  # where the bucket listing resumes


AnyTask = QueueMissingTask | RepairSegmentTask | AuditImagesTask
_KINDS: dict[str, type[AnyTask]] = {
    "queue-missing": QueueMissingTask,
    "repair-segment": RepairSegmentTask,
    "audit-images": AuditImagesTask,
}


def parse_task(body: str) -> AnyTask:
    """Either task from its JSON, told apart by its kind; ValueError for anything else."""
    data = json.loads(body)
    kind = data.get("kind") if isinstance(data, dict) else None
    if kind not in _KINDS:
        raise ValueError(f"not a task: kind {kind!r}")
    return _KINDS[kind].from_data(data)


class TaskQueue:
    def __init__(self, client: Callable[[], Any], queue_url: str) -> None:
        self._client = client
        self._queue_url = queue_url

    def send(self, *tasks: AnyTask) -> None:
        for chunk in chunked(tasks, 10):
            entries = [{"Id": str(i), "MessageBody": t.to_json()} for i, t in enumerate(chunk)]
            response = self._client().send_message_batch(QueueUrl=self._queue_url, Entries=entries)
            if response.get("Failed"):
                raise RuntimeError(f"SQS refused {len(response['Failed'])} task(s): {response['Failed']}")


class TaskRunner:
    def __init__(
        self,
        records: RecordRepository,
        batches: BatchRepository,
        queuer: Queuer,
        tasks: TaskQueue,
        index: IndexState,
        cleaner: ImageCleaner,
        *,
        travel_table: str,
        repair_segments: int,
        repair_page_size: int,
    ) -> None:
        self._cleaner = cleaner
        self._records = records
        self._batches = batches
        self._queuer = queuer
        self._tasks = tasks
        self._index = index
        self._travel_table = travel_table
        self._repair_segments = repair_segments
        self._repair_page_size = repair_page_size

    def start_repair(self) -> int:
        """Fan the repair scan out: one task per segment, each its own chain of invocations, and the bucket
        audit beside them."""
        total = self._repair_segments
        run_id = self._index.start_repair(total)
        segments = (RepairSegmentTask(run_id=run_id, segment=s, total_segments=total) for s in range(total))
        self._tasks.send(*segments, AuditImagesTask())
        return total

    def run(self, task: AnyTask, time_is_up: Callable[[], bool]) -> dict:
        if isinstance(task, QueueMissingTask):
            return self._queue_missing(task, time_is_up)
        if isinstance(task, AuditImagesTask):
            return self._audit(task, time_is_up)
        return self._repair(task, time_is_up)

    def _audit(self, task: AuditImagesTask, time_is_up: Callable[[], bool]) -> dict:
        token, removed = task.continuation_token, 0
        while True:
            count, token = self._cleaner.audit(token, datetime.now(UTC))
            removed += count
            if token is None:
                summary = {"kind": task.kind, "removed": removed, "done": True}
                break
            if time_is_up():
                self._tasks.send(replace(task, continuation_token=token))
                summary = {"kind": task.kind, "removed": removed, "done": False}
                break
        logger.info("image audit progress", extra=summary)
        metrics.add_metric(name="OrphanImagesRemoved", unit=MetricUnit.Count, value=removed)
        return summary

    def _queue_missing(self, task: QueueMissingTask, time_is_up: Callable[[], bool]) -> dict:
        key, queued = task.start_key, 0
        while True:
            page = self._records.missing_page(
                task.user_id, from_index=task.from_index, where="queueing", limit=QUEUE_PAGE_SIZE, start_key=key
            )
            candidates = page.records if task.selection == "all" else [r for r in page.records if is_failed(r)]
            outcomes = self._queuer.queue(
                candidates, batch_id=task.batch_id, style_id=task.style_id, named=task.selection == "failed"
            )
            queued += sum(o.outcome == "queued" for o in outcomes)
            key = page.next_key
            if key is None or time_is_up():
                break
        if key is None:
            self._batches.mark_complete(task.batch_id)
        else:
            self._tasks.send(replace(task, start_key=key))
        summary = {"kind": task.kind, "queued": queued, "done": key is None}
        logger.info("fan-out progress", extra={**summary, "batch_id": task.batch_id, "user_id": task.user_id})
        return summary

    def _repair(self, task: RepairSegmentTask, time_is_up: Callable[[], bool]) -> dict:
        changes = dict.fromkeys(IndexChange, 0)
        done = True
        pages = scan_segment(
            self._travel_table, task.segment, task.total_segments, task.start_key, page_size=self._repair_page_size
        )
        for items, next_key in pages:
            for item in items:
                changes[reconcile(item, "repair").change] += 1
            if next_key and time_is_up():
                self._tasks.send(replace(task, start_key=next_key))
                done = False
                break
        if done and self._index.segment_repaired(task.run_id):
            logger.info("repair run finished: the sparse index is complete", extra={"run_id": task.run_id})
        summary = {"kind": task.kind, "segment": task.segment, "done": done, **changes}
        logger.info("repair segment progress", extra=summary)
        return summary
