"""One image job, start to finish: claim the record, build the prompt, generate, store, write back.

Every way a job ends moves it in its batch exactly once (image_recovery.batches): succeeded when an
image is on the record (ours, or another writer's that arrived meanwhile), failed when the record was
deleted, refused the prompt, or ran out of retries. A job whose record was given to another job has
already been ended by whoever took it, so moving it again is a harmless no-op.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from time import perf_counter

from aws_lambda_powertools.metrics import MetricUnit, single_metric

from image_recovery.aws import BEDROCK_READ_TIMEOUT_SECONDS as READ_TIMEOUT
from image_recovery.batches import BatchRepository, JobState
from image_recovery.errors import (
    CONTENT_FILTERED,
    RETRIES_EXHAUSTED_REASONS,
    GenerationError,
    ModelUnavailableError,
    TransientGenerationError,
)
from image_recovery.governor import Booking, RateGovernor, booked_request_throttled, wait_out
from image_recovery.host_events import HostEvents
from image_recovery.jobs import ImageJob
from image_recovery.models import ImageStatus, Reservation, Segment, TravelRecord, Trip
from image_recovery.observability import METRICS_NAMESPACE, logger, metrics
from image_recovery.prompts import build_prompt
from image_recovery.providers import GeneratedImage, ImageProvider, ImageRequest
from image_recovery.repository import RecordRepository, iso_utc
from image_recovery.spending import BUDGET_EXHAUSTED, BudgetExhausted, DailySpend
from image_recovery.storage import ImageStore, image_key, record_image_prefix
from image_recovery.styles import StyleCatalog

# S3's LastModified and the worker's clock may disagree by a little; an image of a job this one took the
# record from was stored at least StuckJobMinutes (>= 20) before, so a minute of slack loses nothing.
CLOCK_SLACK = timedelta(minutes=1)
WHERE = "worker"
# A job waiting for the next day's image budget says so on its record once a day, not at every return.
WAITING_NOTE_EVERY = timedelta(days=1)


class RetryableJobError(Exception):
    """Raised to hand the message back to SQS for another delivery (or, after the last, the DLQ)."""

    expected = True  # a retry, logged without a traceback (image_recovery.batch_items)

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
        governor: RateGovernor | None = None,
        sleep: Callable[[float], None] = time.sleep,
        events: HostEvents | None = None,
        spend: DailySpend | None = None,
    ) -> None:
        self._records = records
        self._batches = batches
        self._styles = styles
        self._provider = provider
        self._store = store
        self._governor = governor
        self._sleep = sleep
        self._events = events or HostEvents(lambda: None, bus="")
        self._spend = spend

    def process(self, job: ImageJob, *, attempt: int = 1, max_attempts: int = 1, may_wait: float = 0.0) -> JobResult:
        """Run one delivery of a job. `attempt` is the job's attempt (image_recovery.jobs.ImageJob.attempt).

        Permanent failures end the job here (record failed, message acknowledged). Transient ones are
        noted on the record and raised, so the message is delivered again; on the last allowed attempt
        the record is marked failed first, and the message goes on to the dead-letter queue, from where
        a redrive may run it again. With a rate governor, a job that is still to be drawn books its model
        call first, waiting up to `may_wait` seconds, or raises governor.Deferred with the record untouched.
        With a daily image budget, it takes its unit of the day's budget before that, or raises BudgetExhausted
        with the reason noted on the record (which stays queued).
        """
        record = self._records.get(job.pk, job.sk, where=WHERE)
        if record is None or record.kind != job.entity_type or record.image_job_id != job.job_id:
            return self._without_record(job, record)
        if not record.wants_image or not _workable(record):
            return self._already_over(job, record)
        self._take_budget(job, record)
        try:
            booking = self._book(may_wait)
        except Exception:
            self._give_budget_back()
            raise
        earlier_deliveries = record.image_attempts or 0
        claimed_at = datetime.now(UTC)
        if not self._claim(job, record):
            self._give_budget_back()
            current = self._records.get(job.pk, job.sk, where=WHERE)
            if current is None or current.image_job_id != job.job_id:
                return self._without_record(job, current)
            return self._already_over(job, current)

        try:
            if earlier_deliveries:
                # Jobs this one took the record from may have stored images before they were lost. The
                # record is ours now, so none of them is referenced or ever will be (but the image that a
                # regeneration replaces still is, until the new one is written back).
                self._store.delete_stored_before(
                    record_image_prefix(job), claimed_at - CLOCK_SLACK, keep={image_key(job), record.image_key}
                )
            return self._generate(job, record, booking)
        except GenerationError as error:
            if isinstance(error, ModelUnavailableError):
                _model_unavailable(error)
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
            logger.warning("attempt failed; the job is retried", extra={"reason": reason, "detail": detail})
            with single_metric(
                name="GenerationRetried", unit=MetricUnit.Count, value=1, namespace=METRICS_NAMESPACE
            ) as retried:
                retried.add_dimension(name="reason", value=reason)
        raise RetryableJobError(reason, detail)

    def _claim(self, job: ImageJob, record: TravelRecord) -> bool:
        """Move the record to generating for this job, or confirm it already is (a retried delivery)."""
        if record.image_status == ImageStatus.GENERATING:
            claimed = self._records.note_attempt(record, job.job_id)
        else:
            claimed = self._records.mark_generating(record, job.job_id) or self._landed(job, ImageStatus.GENERATING)
        if claimed:
            self._batches.move(job.batch_id, job.job_id, JobState.GENERATING)
        return claimed

    def _without_record(self, job: ImageJob, record: TravelRecord | None) -> JobResult:
        """The job's record is gone, or now belongs to another job: nothing this job stored can be used."""
        if record is None:
            logger.warning("job's record no longer exists", extra={"sk": job.sk})
        self._discard_unless_referenced(job, record)
        # A deleted record ends its job as failed (DESIGN §3). A record given to another job: whoever took it
        # ended this job already, or the host deleted and wrote the record again; either way it is failed.
        self._end(job, JobState.FAILED)
        if record is None:
            return JobResult(job.job_id, "failed", "not_found")
        return JobResult(job.job_id, "skipped", "superseded")

    def _already_over(self, job: ImageJob, record: TravelRecord) -> JobResult:
        """The record is this job's but there is no work left: it has an image (ours, or another writer's that
        arrived meanwhile, whose stale in-flight state is cleared), or it failed for good. Count it, once."""
        if not record.wants_image:
            if record.image_status in (ImageStatus.QUEUED, ImageStatus.GENERATING):
                self._records.settle_in_flight(record, job.job_id)
            self._discard_unless_referenced(job, record)
            self._end(job, JobState.SUCCEEDED)
            return JobResult(job.job_id, "skipped", "has_image")
        # failed for good, or a state nobody can work from (another writer changed imageStatus): it ends failed
        self._discard_unless_referenced(job, record)
        self._end(job, JobState.FAILED)
        return JobResult(job.job_id, "skipped", f"already_{record.image_status or 'missing'}")

    def _take_budget(self, job: ImageJob, record: TravelRecord) -> None:
        """A unit of the day's image budget for this job's model call, or BudgetExhausted: the job waits for the
        next day, and its record says so (noted once a day: the note also shows the job is alive)."""
        if self._spend is None or self._spend.take():
            return
        noted_since = iso_utc(datetime.now(UTC) - WAITING_NOTE_EVERY)
        if record.image_error != BUDGET_EXHAUSTED or (record.image_updated_at or "") < noted_since:
            detail = f"today's budget of {self._spend.policy.daily_images} images is spent; it resumes tomorrow (UTC)"
            self._records.note_waiting(record, job.job_id, reason=BUDGET_EXHAUSTED, detail=detail)
            logger.warning("the day's image budget is spent; the job waits for the next day")
        raise BudgetExhausted(self._spend.wait_seconds())

    def _give_budget_back(self) -> None:
        """The unit taken for a model call that will not happen now (best effort: a unit lost errs low)."""
        if self._spend is None:
            return
        try:
            self._spend.give_back()
        except Exception:
            logger.exception("could not give a unit of the day's image budget back")

    def _book(self, may_wait: float) -> Booking | None:
        """A slot for the model call, booked before the record is claimed (so a deferred job leaves no trace
        on it) and after it is known to need an image (so a stale job takes no slot)."""
        if self._governor is None:
            return None
        started = perf_counter()
        booking = wait_out(self._governor.book(may_wait), self._sleep)
        metrics.add_metric(name="GovernorRate", unit=MetricUnit.Count, value=booking.rate)
        metrics.add_metric(name="GovernorWait", unit=MetricUnit.Milliseconds, value=(perf_counter() - started) * 1000)
        return booking

    def _call_model(self, request: ImageRequest, booking: Booking | None) -> GeneratedImage:
        """The model call, at its booked slot; what Bedrock answered goes back to the governor."""
        if self._governor is None or booking is None:
            return self._provider.generate(request)
        self._sleep(self._governor.until(booking))
        started = perf_counter()
        try:
            image = self._provider.generate(request)
        except TransientGenerationError as error:
            if booked_request_throttled(error.reason == "throttled", perf_counter() - started, READ_TIMEOUT):
                self._tell_governor(self._governor.throttled, booking)
            raise
        # throttled first and then let through by the SDK's retry counts as throttled
        throttled = booked_request_throttled(image.throttled_attempts, perf_counter() - started, READ_TIMEOUT)
        self._tell_governor(self._governor.throttled if throttled else self._governor.succeeded, booking)
        return image

    @staticmethod
    def _tell_governor(report: Callable[[Booking], float], booking: Booking) -> None:
        """Best effort: a budget that cannot be written now must not fail the job it was about."""
        try:
            report(booking)
        except Exception:
            logger.exception("could not tell the rate governor how Bedrock answered")

    def _generate(self, job: ImageJob, record: TravelRecord, booking: Booking | None) -> JobResult:
        trip, segment = self._parents(record)
        # the record's own style: the message is only trusted for what it cannot be read from (DESIGN §4)
        style = self._styles.resolve_or_default(record.image_style_id or job.style_id)
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
        image = self._call_model(request, booking)
        metrics.add_metric(
            name="GenerationLatency", unit=MetricUnit.Milliseconds, value=(perf_counter() - started) * 1000
        )
        if image.fell_back_from is not None:  # drawn all the same, but the configured model needs the operator
            _model_unavailable(image.fell_back_from)
            logger.warning("drawn with the fallback model", extra={"model": image.model})
            metrics.add_metric(name="FallbackModelUsed", unit=MetricUnit.Count, value=1)

        key = image_key(job)
        try:
            url = self._store.put(key, image.data, image.content_type)
        except Exception as error:
            raise TransientGenerationError("storage_error", f"{type(error).__name__}: {error}") from error
        if not self._records.mark_ready(record, job.job_id, image_url=url, image_key=key) and not self._landed(
            job, ImageStatus.READY, image_key=key
        ):
            # Deleted, given to another job, or another writer's image arrived meanwhile: keep theirs.
            current = self._records.get(job.pk, job.sk, where=WHERE)
            if current is None or current.image_job_id != job.job_id:
                return self._without_record(job, current)
            if current.wants_image:
                raise TransientGenerationError("internal_error", "the write-back's condition failed; retrying")
            return self._already_over(job, current)
        if record.regenerating:
            self._remove_replaced(job, record)
        self._events.image_generated(job, url, regenerated=record.regenerating)
        self._end(job, JobState.SUCCEEDED)
        metrics.add_metric(
            name="ImagesRegenerated" if record.regenerating else "ImagesGenerated", unit=MetricUnit.Count, value=1
        )
        logger.info("image stored", extra={"image_key": key, "model": image.model, "replaced": record.image_replaces})
        return JobResult(job.job_id, "succeeded", image_key=key)

    def _end(self, job: ImageJob, state: JobState) -> None:
        """Count the job's end in its batch; the job that ends a person's batch tells the host app so (a read of
        the batch per job, made only when there is a host app to tell)."""
        moved = self._batches.move(job.batch_id, job.job_id, state)
        if moved and self._events.enabled and (finished := self._batches.finish(job.batch_id)):
            self._events.batch_completed(*finished)

    def _remove_replaced(self, job: ImageJob, record: TravelRecord) -> None:
        """A regeneration wrote its image back: the object it replaced goes, if it is the service's own one of
        this record (under the store's URL base and the record's prefix). Another writer's URL, or an object of
        another record (a copied item's, not yet adopted), stays."""
        replaced = self._store.key_of(record.image_replaces)
        if replaced is not None and replaced.startswith(record_image_prefix(job)) and replaced != image_key(job):
            self._store.delete(replaced)

    def _fail(self, job: ImageJob, record: TravelRecord, reason: str, detail: str) -> JobResult:
        logger.warning("job failed", extra={"reason": reason, "detail": detail})
        with single_metric(
            name="GenerationFailures", unit=MetricUnit.Count, value=1, namespace=METRICS_NAMESPACE
        ) as failure:
            failure.add_dimension(name="reason", value=reason)
        if reason != CONTENT_FILTERED:  # the service's or the model's fault, not the prompt's
            metrics.add_metric(name="GenerationFaults", unit=MetricUnit.Count, value=1)
        if self._records.mark_failed(record, job.job_id, reason=reason, detail=detail) or self._landed(
            job, ImageStatus.FAILED, image_error=reason
        ):
            self._store.delete(image_key(job))  # stored before a later step failed: nothing points at it
            self._events.image_failed(job, reason)
            self._end(job, JobState.FAILED)
            return JobResult(job.job_id, "failed", reason)
        current = self._records.get(job.pk, job.sk, where=WHERE)
        if current is None or current.image_job_id != job.job_id:
            return self._without_record(job, current)
        return self._already_over(job, current)

    def _landed(self, job: ImageJob, status: ImageStatus, **expected: str) -> bool:
        """A conditional write of this job failed its condition: did an earlier attempt of that same write
        land? The SDK re-sends a request whose answer was lost, and the re-sent one then meets the state
        the first one made. Only this job writes its id with these values, so finding them proves it."""
        current = self._records.get(job.pk, job.sk, where=WHERE)
        return (
            current is not None
            and current.image_job_id == job.job_id
            and current.image_status == status
            and all(getattr(current, name) == value for name, value in expected.items())
        )

    def _discard_unless_referenced(self, job: ImageJob, record: TravelRecord | None) -> None:
        """A delivery that will not write back removes what an earlier delivery of its job stored,
        unless that is the record's image (the earlier delivery wrote back and then went unacknowledged)."""
        key = image_key(job)
        if record is None or record.image_key != key:
            self._store.delete(key)

    def _parents(self, record: TravelRecord) -> tuple[Trip | None, Segment | None]:
        """The trip (and segment) above a record, read in one BatchGetItem, for the prompt's context."""
        if isinstance(record, Trip):
            return None, None
        path = record.key_path
        trip_key = (record.pk, Trip.sort_key(path.trip_id))
        segment_key = (
            (record.pk, Segment.sort_key(path.trip_id, path.segment_id or ""))
            if isinstance(record, Reservation)
            else None
        )
        found = self._records.get_many([k for k in (trip_key, segment_key) if k], where=WHERE)
        trip = found.get(trip_key)
        segment = found.get(segment_key) if segment_key else None
        return (trip if isinstance(trip, Trip) else None), (segment if isinstance(segment, Segment) else None)


def _model_unavailable(error: ModelUnavailableError) -> None:
    """The configured model refused a job for a fault of the deployment: ModelUnavailableAlarm."""
    logger.warning("the model is unavailable", extra={"reason": error.reason, "detail": error.detail})
    metrics.add_metric(name="ModelUnavailable", unit=MetricUnit.Count, value=1)


def _workable(record: TravelRecord) -> bool:
    """Queued, generating (a retried delivery), or failed after its retries ran out (a redriven dead letter)."""
    status = record.image_status
    return status in (ImageStatus.QUEUED, ImageStatus.GENERATING) or (
        status == ImageStatus.FAILED and record.image_error in RETRIES_EXHAUSTED_REASONS
    )
