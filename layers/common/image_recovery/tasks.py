"""Long work split into SQS-carried tasks, each resuming where the previous invocation stopped.

Three kinds: queueing every missing (or failed) record of one user, for users with more than one request
can handle at once; one segment of the full-table repair scan; and the repair run's audit of the image
bucket. A task runs until its Lambda is close to its timeout, then sends itself on with the key it
reached, so any amount of work is covered by a chain of short invocations.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache
from typing import Annotated, Any, Literal

from aws_lambda_powertools.metrics import MetricUnit
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from pydantic.alias_generators import to_camel

from image_recovery.batches import BatchRepository
from image_recovery.cleanup import ImageCleaner
from image_recovery.index_state import IndexState
from image_recovery.indexing import IndexChange, reconcile, scan_segment
from image_recovery.models import is_failed
from image_recovery.observability import logger, metrics
from image_recovery.queueing import Queuer, chunked
from image_recovery.repository import RecordRepository

QUEUE_PAGE_SIZE = 100


class _Task(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True, defer_build=True)

    version: Literal[1] = 1
    start_key: dict[str, Any] | None = None


class QueueMissingTask(_Task):
    kind: Literal["queue-missing"] = "queue-missing"
    batch_id: str
    user_id: str
    style_id: str
    selection: Literal["all", "failed"]
    from_index: bool  # where the first page came from; the keys that follow only make sense there


class RepairSegmentTask(_Task):
    kind: Literal["repair-segment"] = "repair-segment"
    run_id: str
    segment: int = Field(ge=0)
    total_segments: int = Field(ge=1)


class AuditImagesTask(_Task):
    kind: Literal["audit-images"] = "audit-images"
    continuation_token: str | None = None  # where the bucket listing resumes


AnyTask = QueueMissingTask | RepairSegmentTask | AuditImagesTask
Task = Annotated[AnyTask, Field(discriminator="kind")]


@cache
def task_adapter() -> TypeAdapter[AnyTask]:
    """Parses either task from its JSON; built on first use (the API sends tasks but never reads them)."""
    return TypeAdapter(Task)


class TaskQueue:
    def __init__(self, client: Callable[[], Any], queue_url: str) -> None:
        self._client = client
        self._queue_url = queue_url

    def send(self, *tasks: AnyTask) -> None:
        for chunk in chunked(tasks, 10):
            entries = [{"Id": str(i), "MessageBody": t.model_dump_json(by_alias=True)} for i, t in enumerate(chunk)]
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
                self._tasks.send(task.model_copy(update={"continuation_token": token}))
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
            if key is None:
                self._batches.mark_complete(task.batch_id)
                return {"kind": task.kind, "queued": queued, "done": True}
            if time_is_up():
                self._tasks.send(task.model_copy(update={"start_key": key}))
                return {"kind": task.kind, "queued": queued, "done": False}

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
                self._tasks.send(task.model_copy(update={"start_key": next_key}))
                done = False
                break
        if done and self._index.segment_repaired(task.run_id):
            logger.info("repair run finished: the sparse index is complete", extra={"run_id": task.run_id})
        summary = {"kind": task.kind, "segment": task.segment, "done": done, **changes}
        logger.info("repair segment progress", extra=summary)
        return summary
