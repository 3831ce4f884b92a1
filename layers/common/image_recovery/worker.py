"""One image job, start to finish: claim the record, build the prompt, generate, store, write back."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from time import perf_counter

from aws_lambda_powertools.metrics import MetricUnit, single_metric

from image_recovery.batches import BatchRepository
from image_recovery.errors import (
    RETRIES_EXHAUSTED_REASONS,
    GenerationError,
    ModelUnavailableError,
    TransientGenerationError,
)
from image_recovery.jobs import ImageJob
from image_recovery.models import ImageStatus, Reservation, Segment, TravelRecord, Trip, user_pk
from image_recovery.observability import METRICS_NAMESPACE, logger, metrics
from image_recovery.prompts import build_prompt
from image_recovery.providers import ImageProvider, ImageRequest
from image_recovery.repository import RecordRepository
from image_recovery.storage import ImageStore, image_key, record_image_prefix
from image_recovery.styles import StyleCatalog

# S3's LastModified and the worker's clock may disagree by a little; an image of a job this one took the
# record from was stored at least StuckJobMinutes (>= 20) before, so a minute of slack loses nothing.
CLOCK_SLACK = timedelta(minutes=1)


class RetryableJobError(Exception):
    """Raised to hand the message back to SQS for another delivery (or, after the last, the DLQ)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass(frozen=True)
class JobResult:
    job_id: str
    outcome: str  # succeeded | failed | skipped
    reason: str | None = None
    image_key: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


class ImageWorker:
    def __init__(
        self,
        records: RecordRepository,
        batches: BatchRepository,
        styles: StyleCatalog,
        provider: ImageProvider,
        store: ImageStore,
    ) -> None:
        self._records = records
        self._batches = batches
        self._styles = styles
        self._provider = provider
        self._store = store

    def process(self, job: ImageJob, *, attempt: int = 1, max_attempts: int = 1) -> JobResult:
        """Run one delivery of a job. `attempt` is the message's receive count.

        Permanent failures end the job here (record failed, message acknowledged). Transient ones are
        noted on the record and raised, so the message is delivered again; on the last allowed attempt
        the record is marked failed first, and the message goes on to the dead-letter queue, from where
        a redrive may run it again.
        """
        record = self._records.get(job.pk, job.sk)
        if record is None or record.id != job.record_id or record.kind != job.entity_type:
            logger.warning("job's record no longer exists", extra={"sk": job.sk})
            self._store.delete(image_key(job))  # whatever an earlier delivery of this job stored
            self._batches.finished(job.batch_id, succeeded=False, was_generating=False)
            return JobResult(job.job_id, "failed", "not_found")
        if record.image_job_id != job.job_id:
            self._discard_unless_referenced(job, record)
            return JobResult(job.job_id, "skipped", "superseded")
        earlier_deliveries = record.image_attempts or 0
        claimed_at = datetime.now(UTC)
        if not self._claim(job, record):
            self._discard_unless_referenced(job, record)
            return JobResult(job.job_id, "skipped", f"already_{record.image_status}")

        try:
            if earlier_deliveries:
                # Jobs this one took the record from may have stored images before they were lost. The
                # record has no image and is ours now, so none of them is referenced or ever will be.
                self._store.delete_stored_before(
                    record_image_prefix(job), claimed_at - CLOCK_SLACK, keep=image_key(job)
                )
            return self._generate(job, record)
        except GenerationError as error:
            if isinstance(error, ModelUnavailableError):  # the deployment's fault: ModelUnavailableAlarm
                logger.warning("the model is unavailable", extra={"reason": error.reason, "detail": error.detail})
                metrics.add_metric(name="ModelUnavailable", unit=MetricUnit.Count, value=1)
            if not error.retryable:
                return self._fail(job, record, error.reason, error.detail)
            reason, detail = error.reason, error.detail
        except Exception as error:  # an AWS fault in our own bookkeeping: retried like any transient error
            reason, detail = "internal_error", f"{type(error).__name__}: {error}"
            logger.exception("job failed on an internal error")
        if attempt >= max_attempts:
            self._fail(job, record, reason, detail)
        else:
            self._records.note_retry(record, job.job_id, reason=reason, detail=detail)
            metrics.add_metric(name="GenerationRetried", unit=MetricUnit.Count, value=1)
        raise RetryableJobError(reason, detail)

    def _claim(self, job: ImageJob, record: TravelRecord) -> bool:
        """Move the record to generating for this job, or confirm it already is (a retried delivery)."""
        status = record.image_status
        if status == ImageStatus.GENERATING:
            return self._records.note_attempt(record, job.job_id)
        redriven = status == ImageStatus.FAILED and record.image_error in RETRIES_EXHAUSTED_REASONS
        if status != ImageStatus.QUEUED and not redriven:
            return False  # ready, or failed for good: a duplicate delivery of a job that has ended
        if not self._records.mark_generating(record, job.job_id) and not self._landed(job, ImageStatus.GENERATING):
            return False
        if redriven:
            self._batches.restarted(job.batch_id)
        else:
            self._batches.started(job.batch_id)
        return True

    def _generate(self, job: ImageJob, record: TravelRecord) -> JobResult:
        trip, segment = self._parents(record)
        style = self._styles.resolve_or_default(job.style_id)
        parts = build_prompt(record, style, trip=trip, segment=segment)
        request = ImageRequest(
            prompt=parts.prompt,
            negative_prompt=parts.negative_prompt,
            title=parts.title,
            subtitle=parts.subtitle,
            style_id=style.id,
            seed=parts.seed,
        )
        started = perf_counter()
        image = self._provider.generate(request)
        metrics.add_metric(
            name="GenerationLatency", unit=MetricUnit.Milliseconds, value=(perf_counter() - started) * 1000
        )

        key = image_key(job)
        try:
            url = self._store.put(key, image.data, image.content_type)
        except Exception as error:
            raise TransientGenerationError("storage_error", f"{type(error).__name__}: {error}") from error
        written = self._records.mark_ready(record, job.job_id, image_url=url, image_key=key)
        if not written and not self._landed(job, ImageStatus.READY, image_key=key):
            # An image arrived meanwhile (another writer) or the record was re-queued: keep theirs.
            self._store.delete(key)
            self._batches.finished(job.batch_id, succeeded=True, was_generating=True)
            return JobResult(job.job_id, "skipped", "image_set_meanwhile")
        self._batches.finished(job.batch_id, succeeded=True, was_generating=True)
        metrics.add_metric(name="ImagesGenerated", unit=MetricUnit.Count, value=1)
        logger.info("image stored", extra={"image_key": key, "model": image.model})
        return JobResult(job.job_id, "succeeded", image_key=key)

    def _fail(self, job: ImageJob, record: TravelRecord, reason: str, detail: str) -> JobResult:
        logger.warning("job failed", extra={"reason": reason, "detail": detail})
        if self._records.mark_failed(record, job.job_id, reason=reason, detail=detail) or self._landed(
            job, ImageStatus.FAILED, image_error=reason
        ):
            self._store.delete(image_key(job))  # stored before a later step failed: nothing points at it
            self._batches.finished(job.batch_id, succeeded=False, was_generating=True)
        with single_metric(
            name="GenerationFailures", unit=MetricUnit.Count, value=1, namespace=METRICS_NAMESPACE
        ) as failure:
            failure.add_dimension(name="reason", value=reason)
        return JobResult(job.job_id, "failed", reason)

    def _landed(self, job: ImageJob, status: ImageStatus, **expected: str) -> bool:
        """A conditional write of this job failed its condition: did an earlier attempt of that same write
        land? The SDK re-sends a request whose answer was lost, and the re-sent one then meets the state
        the first one made. Only this job writes its id with these values, so finding them proves it."""
        current = self._records.get(job.pk, job.sk)
        return (
            current is not None
            and current.image_job_id == job.job_id
            and current.image_status == status
            and all(getattr(current, name) == value for name, value in expected.items())
        )

    def _discard_unless_referenced(self, job: ImageJob, record: TravelRecord) -> None:
        """A delivery that will not write back removes what an earlier delivery of its job stored,
        unless that is the record's image (the earlier delivery wrote back and then went unacknowledged)."""
        key = image_key(job)
        if record.image_key != key:
            self._store.delete(key)

    def _parents(self, record: TravelRecord) -> tuple[Trip | None, Segment | None]:
        """The trip (and segment) above a record, read in one BatchGetItem, for the prompt's context."""
        if isinstance(record, Trip):
            return None, None
        pk = user_pk(record.owner_id)
        trip_key = (pk, Trip.sort_key(record.trip_id or ""))
        segment_key = (
            (pk, Segment.sort_key(record.trip_id or "", record.segment_id or ""))
            if isinstance(record, Reservation)
            else None
        )
        found = self._records.get_many([k for k in (trip_key, segment_key) if k])
        trip = found.get(trip_key)
        segment = found.get(segment_key) if segment_key else None
        return (trip if isinstance(trip, Trip) else None), (segment if isinstance(segment, Segment) else None)
