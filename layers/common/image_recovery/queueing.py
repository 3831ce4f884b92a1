"""Queueing generation jobs: one conditional write per record, then SQS messages in batches of 10.

The record is marked queued before its message is sent, so a message never exists for a record that
is not queued; if the send fails the mark is rolled back to failed (`enqueue_failed`) and reported.

The marks of one call run on a small pool of threads (each a DynamoDB round trip that mostly waits), a
chunk or two ahead of the sends, so 100 records cost about ten round trips of marking instead of a
hundred. Sends, rollbacks, batch counters, metrics and the order of outcomes stay on the calling thread.
"""

from __future__ import annotations

import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from itertools import count, islice
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from image_recovery.batches import BatchRepository, JobState
from image_recovery.errors import TRANSIENT_REASONS
from image_recovery.jobs import ImageJob
from image_recovery.models import IN_FLIGHT, ImageStatus, TravelRecord
from image_recovery.observability import logger, metrics
from image_recovery.repository import RecordRepository

SQS_BATCH_LIMIT = 10
BATCH_TOTAL_EVERY_CHUNKS = 10
# Conditional marks in flight at once. boto3's and PynamoDB's connection pools hold 10 connections per
# client: more threads than that would wait for a connection (or open and drop extra ones).
MARK_WORKERS = 10
MAX_MARK_WORKERS = 10

QUEUED, SKIPPED, FAILED = "queued", "skipped", "failed"


@dataclass(frozen=True)
class _Claim:
    """What marking one record came to: claimed or not (and why not); `took_over` a stuck job."""

    claimed: bool
    reason: str | None = None
    took_over: TravelRecord | None = None


_Marking = list[tuple[TravelRecord, ImageJob, Future[_Claim]]]  # one chunk's records, jobs and marks under way


@dataclass(frozen=True)
class ItemOutcome:
    type: str
    id: str
    outcome: str
    reason: str | None = None


def is_stuck(record: TravelRecord, stale_before: str | None) -> bool:
    """In flight, but with no sign of progress since the cut-off: its message or its worker was lost."""
    return (
        stale_before is not None
        and record.image_status in IN_FLIGHT
        and (record.image_updated_at is None or record.image_updated_at < stale_before)
    )


@dataclass(frozen=True)
class QueueDepth:
    """What the job queue holds now (visible, in flight and delayed messages) and how long it keeps one."""

    messages: int
    retention: timedelta


def failed_for_good(record: TravelRecord) -> bool:
    """Failed for a reason that another attempt will not cure (a content refusal, say)."""
    return record.image_status == ImageStatus.FAILED and record.image_error not in TRANSIENT_REASONS


def skip_reason(
    record: TravelRecord, stale_before: str | None = None, *, named: bool = True, regenerate: bool = False
) -> str | None:
    """Why a record must not be queued now, or None if it may be.

    `named`: the request names this record (by id, or every failed record with retryFailed), which may
    queue a permanent failure again; queue-all and the sweep never do (DESIGN §4). `regenerate`: a request
    to replace the image of a record that has one (DESIGN §3), which otherwise is not queued.
    """
    if not record.image_missing and not regenerate:
        return "has_image"
    if is_stuck(record, stale_before):
        return None
    if record.image_status == ImageStatus.QUEUED:
        return "already_queued"
    if record.image_status == ImageStatus.GENERATING:
        return "already_generating"
    if not named and failed_for_good(record):
        return "failed_permanently"
    return None


def log_queued(record: TravelRecord, job: ImageJob, message: str = "job queued") -> None:
    """One line per job sent: the record it is for, and the ids that follow it into the worker's logs."""
    logger.info(
        message,
        extra={
            "record_type": record.kind.label,
            "record_id": record.id,
            "sk": record.sk,
            "job_id": job.job_id,
            "batch_id": job.batch_id,
        },
    )


def job_on(record: TravelRecord) -> ImageJob | None:
    """The job on an in-flight record, if the record names one the service could have queued (its id, batch and
    style; a careless writer may have written anything there)."""
    if not (record.image_job_id and record.image_batch_id and record.image_style_id):
        return None
    try:
        return ImageJob.for_record(
            record, job_id=record.image_job_id, batch_id=record.image_batch_id, style_id=record.image_style_id
        )
    except ValueError:
        return None


def chunked(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


class JobQueue:
    """Sends job messages to SQS, at most ten per request."""

    def __init__(self, client: Callable[[], Any], queue_url: str) -> None:
        self._client = client
        self._queue_url = queue_url

    def send(self, jobs: Sequence[ImageJob]) -> set[str]:
        """Send up to ten jobs; return the job ids that SQS did not accept."""
        if len(jobs) > SQS_BATCH_LIMIT:
            raise ValueError(f"at most {SQS_BATCH_LIMIT} jobs per call, got {len(jobs)}")
        entries = [{"Id": str(i), "MessageBody": job.to_message()} for i, job in enumerate(jobs)]
        try:
            response = self._client().send_message_batch(QueueUrl=self._queue_url, Entries=entries)
        except Exception:
            logger.exception("send_message_batch failed", extra={"jobs": len(jobs)})
            return {job.job_id for job in jobs}
        failed = response.get("Failed", [])
        if failed:
            logger.error("SQS refused messages", extra={"failed": failed})
        return {jobs[int(entry["Id"])].job_id for entry in failed}

    def depth(self) -> QueueDepth:
        attributes = self._client().get_queue_attributes(QueueUrl=self._queue_url, AttributeNames=_DEPTH_ATTRIBUTES)
        values = attributes["Attributes"]
        messages = sum(int(values.get(name, 0)) for name in _DEPTH_ATTRIBUTES if name.startswith("Approximate"))
        return QueueDepth(messages, timedelta(seconds=int(values["MessageRetentionPeriod"])))


_DEPTH_ATTRIBUTES = [
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
    "MessageRetentionPeriod",
]


class Queuer:
    def __init__(
        self, records: RecordRepository, batches: BatchRepository, queue: JobQueue, *, workers: int = MARK_WORKERS
    ) -> None:
        if not 1 <= workers <= MAX_MARK_WORKERS:
            raise ValueError(f"workers must be between 1 and {MAX_MARK_WORKERS}, got {workers}")
        self._records = records
        self._batches = batches
        self._queue = queue
        self._workers = workers

    def open_batch(self, owner: str, style_id: str, *, prefix: str = "") -> str:
        """A new batch for one request (or one sweep run); returns its id."""
        batch_id = f"{prefix}{uuid.uuid4()}"
        self._batches.create(batch_id, owner=owner, style_id=style_id)
        return batch_id

    def queue(
        self,
        candidates: Iterable[TravelRecord],
        *,
        batch_id: str,
        style_id: str,
        stale_before: str | None = None,
        named: bool = True,
        regenerate: bool = False,
    ) -> Iterator[ItemOutcome]:
        """Queue each record at most once; yields one outcome per record, in order, chunk by chunk.

        With `stale_before`, records in flight with no progress since then are taken over by a new job
        (the old job's message, if it ever arrives, finds another job id on the record and does nothing).
        `named` and `regenerate` are skip_reason's. JobsQueued and JobsSkipped count the outcomes, whoever queues.
        """
        unrecorded = 0  # queued but not yet added to the batch's total: one counter write per 100 records
        counts: Counter[str] = Counter()
        chunks = chunked(candidates, SQS_BATCH_LIMIT)
        marking: deque[_Marking] = deque()
        ahead = -(-self._workers // SQS_BATCH_LIMIT) + 1  # chunks marked ahead: every worker busy during a send
        pool = ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="queue-mark")
        try:
            for number in count(1):
                while len(marking) < ahead and (chunk := next(chunks, None)) is not None:
                    marking.append(self._mark(pool, chunk, batch_id, style_id, stale_before, named, regenerate))
                if not marking:
                    break
                outcomes = self._send(marking.popleft())
                counts.update(o.outcome for o in outcomes)
                unrecorded += sum(o.outcome == QUEUED for o in outcomes)
                if number % BATCH_TOTAL_EVERY_CHUNKS == 0:
                    self._batches.add_queued(batch_id, unrecorded)
                    unrecorded = 0
                yield from outcomes
        finally:
            # After a failure (or a consumer that stopped early) no further mark starts; one already made
            # stays queued without a message, like a mark whose send never happened: the sweep takes it over.
            pool.shutdown(cancel_futures=True)
            self._batches.add_queued(batch_id, unrecorded)
            metrics.add_metric(name="JobsQueued", unit=MetricUnit.Count, value=counts[QUEUED])
            metrics.add_metric(name="JobsSkipped", unit=MetricUnit.Count, value=counts[SKIPPED])

    def _mark(
        self,
        pool: Executor,
        chunk: list[TravelRecord],
        batch_id: str,
        style_id: str,
        stale_before: str | None,
        named: bool,
        regenerate: bool,
    ) -> _Marking:
        """Start marking each record of the chunk for its own new job, on the pool."""
        marking = []
        correlation_id = logger.get_correlation_id() or ""  # the API request's, carried to the worker's logs
        for record in chunk:
            job = ImageJob.for_record(
                record, job_id=uuid.uuid4().hex, batch_id=batch_id, style_id=style_id, correlation_id=correlation_id
            )
            claiming = pool.submit(
                self._claim, record, job, stale_before=stale_before, named=named, regenerate=regenerate
            )
            marking.append((record, job, claiming))
        return marking

    def _claim(
        self, record: TravelRecord, job: ImageJob, *, stale_before: str | None, named: bool, regenerate: bool
    ) -> _Claim:
        """Mark the record queued for `job` (on a pool thread). A record whose state moved since it was read
        is looked at again once, so a decision is never made on a stale copy."""
        for _ in range(2):
            reason = skip_reason(record, stale_before, named=named, regenerate=regenerate)
            if reason is not None:
                return _Claim(False, reason)
            if self._records.mark_queued(
                record,
                job_id=job.job_id,
                batch_id=job.batch_id,
                style_id=job.style_id,
                stale_before=stale_before,
                replace_image=not record.image_missing,
            ):
                if is_stuck(record, stale_before):
                    self._abandon(record)  # `record` is the copy read before: it names the stuck job
                    return _Claim(True, took_over=record)
                return _Claim(True)
            # lost a race, or the SDK re-sent our own mark after its answer was lost
            current = self._records.get(record.pk, record.sk, where="queueing")
            if current is None:
                return _Claim(False, "not_found")
            if current.image_job_id == job.job_id:
                return _Claim(True)
            record = current
        return _Claim(
            False, skip_reason(record, stale_before, named=named, regenerate=regenerate) or "changed_meanwhile"
        )

    def _send(self, marking: _Marking) -> list[ItemOutcome]:
        """Wait for the chunk's marks, send the claimed ones in one batch; the outcomes in chunk order."""
        outcomes: dict[int, ItemOutcome] = {}
        marked: list[tuple[int, TravelRecord, ImageJob]] = []
        for index, (record, job, claiming) in enumerate(marking):
            try:
                claim = claiming.result()
            except Exception:
                logger.exception("could not mark record queued", extra={"sk": record.sk})
                outcomes[index] = ItemOutcome(record.kind.label, record.id, FAILED, "storage_error")
                continue
            if claim.took_over is not None:
                logger.warning(
                    "re-queued a stuck record", extra={"sk": record.sk, "old_batch_id": claim.took_over.image_batch_id}
                )
                metrics.add_metric(name="StuckJobsRequeued", unit=MetricUnit.Count, value=1)
            if claim.claimed:
                marked.append((index, record, job))
            else:
                outcome = FAILED if claim.reason == "not_found" else SKIPPED
                outcomes[index] = ItemOutcome(record.kind.label, record.id, outcome, claim.reason)

        rejected = self._queue.send([job for _, _, job in marked]) if marked else set()
        for index, record, job in marked:
            if job.job_id in rejected:
                self._release(record, job)
                outcomes[index] = ItemOutcome(record.kind.label, record.id, FAILED, "enqueue_failed")
            else:
                log_queued(record, job)
                outcomes[index] = ItemOutcome(record.kind.label, record.id, QUEUED)
        return [outcomes[i] for i in range(len(marking))]

    def resendable(self, record: TravelRecord) -> ImageJob | None:
        """The job a stuck record names, if it can be sent again as itself: a usable job of a batch that still
        exists (a table kept from an earlier stack names batches this stack never had)."""
        job = job_on(record)
        return job if job is not None and self._batches.get(job.batch_id) is not None else None

    def resend(self, lost: Iterable[tuple[TravelRecord, ImageJob]]) -> Iterator[ItemOutcome]:
        """Send the lost message of each stuck job again, under the job's own id and batch, so that the request
        that queued it counts it on as if nothing had happened: a take-over never ends a person's job as failed.
        The caller decides which jobs are lost and passes each with its job (resendable). One outcome per
        record, in order."""
        for chunk in chunked(lost, SQS_BATCH_LIMIT):
            outcomes: dict[int, ItemOutcome] = {}
            marked: list[tuple[int, TravelRecord, ImageJob]] = []
            for index, (record, job) in enumerate(chunk):
                try:
                    resent = self._records.mark_resent(record, job.job_id)
                except Exception:
                    logger.exception("could not mark a stuck record queued again", extra={"sk": record.sk})
                    outcomes[index] = ItemOutcome(record.kind.label, record.id, FAILED, "storage_error")
                    continue
                if resent:
                    marked.append((index, record, job))
                else:
                    outcomes[index] = ItemOutcome(record.kind.label, record.id, SKIPPED, "changed_meanwhile")
            rejected = self._queue.send([job for _, _, job in marked]) if marked else set()
            for index, record, job in marked:
                if job.job_id in rejected:
                    self._release(record, job)
                    self._batches.move(job.batch_id, job.job_id, JobState.FAILED)  # counted in its batch already
                    outcomes[index] = ItemOutcome(record.kind.label, record.id, FAILED, "enqueue_failed")
                else:
                    log_queued(record, job, "sent a stuck job's lost message again")
                    outcomes[index] = ItemOutcome(record.kind.label, record.id, QUEUED)
            metrics.add_metric(name="StuckJobsRequeued", unit=MetricUnit.Count, value=len(marked) - len(rejected))
            yield from (outcomes[i] for i in range(len(chunk)))

    def _abandon(self, stuck: TravelRecord) -> None:
        """End the stuck job in its own batch (as failed), so that batch's progress can still finish."""
        if stuck.image_batch_id and stuck.image_job_id:
            self._batches.move(stuck.image_batch_id, stuck.image_job_id, JobState.FAILED)

    def _release(self, record: TravelRecord, job: ImageJob) -> None:
        """Its message never left: record the failure so the record can be queued again."""
        try:
            self._records.mark_failed(record, job.job_id, reason="enqueue_failed")
        except Exception:
            # Left queued without a message; the sweep's stuck-job pass will pick it up.
            logger.exception("could not release record after failed send", extra={"sk": record.sk})
