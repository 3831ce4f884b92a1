"""The worker's Lambda runtime: SQS batch -> one idempotent job per record, retries delayed by visibility."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from image_recovery import aws
from image_recovery.batch_items import partial_batch_response, records_of, sqs_message_id
from image_recovery.batches import BatchRepository
from image_recovery.config import WorkerSettings
from image_recovery.governor import Deferred, DynamoBudgetStore, Policy, RateGovernor
from image_recovery.host_events import HostEvents
from image_recovery.jobs import ImageJob
from image_recovery.observability import logger, metrics
from image_recovery.providers import build_provider
from image_recovery.repository import RecordRepository
from image_recovery.spending import DailySpend
from image_recovery.storage import ImageStore
from image_recovery.styles import StyleCatalog
from image_recovery.worker import ImageWorker

# A finished job is remembered for a day, longer than the queue keeps any redelivery.
IDEMPOTENCY_TTL_SECONDS = 24 * 3600
RETRY_BASE_SECONDS = 30
RETRY_MAX_SECONDS = 900


class HandedBack(Exception):
    """A job that was to go back to the queue as a new message could not be sent: its own message goes
    back instead (its visibility changed), and SQS counts this delivery toward MaxReceiveCount."""

    expected = True


class AttemptsUsedUp(Exception):
    """A job re-sent after earlier attempts came back after its last one (image_recovery.jobs): its message
    goes back at once, untouched, until SQS's own receive count moves it to the dead-letter queue."""

    expected = True


def _attempt(record: dict) -> int:
    """The job's attempt, as far as the raw record tells (0 when it cannot); only for ordering the batch."""
    try:
        earlier = json.loads(record["body"]).get("earlierAttempts", 0)
        return int(record["attributes"]["ApproximateReceiveCount"]) + int(earlier)
    except (KeyError, TypeError, ValueError, AttributeError):
        return 0


def retry_delay_seconds(attempt: int) -> int:
    """30 s, 60 s, 120 s, ... capped at 15 minutes, for the attempt that just failed (1-based)."""
    return min(RETRY_BASE_SECONDS * 2 ** max(attempt - 1, 0), RETRY_MAX_SECONDS)


@dataclass(frozen=True)
class JobRecord:
    """The parts of an SQS record the worker reads; a record that does not carry a job fails alone."""

    message_id: str
    receipt_handle: str
    job: ImageJob
    receive_count: int  # SQS's ApproximateReceiveCount: this message's delivery number

    @property
    def attempt(self) -> int:
        """The job's attempt, across the messages it travelled in (image_recovery.jobs.ImageJob.attempt)."""
        return self.job.attempt(self.receive_count)

    @classmethod
    def parse(cls, record: dict) -> JobRecord:
        """ValueError (or KeyError, TypeError) for a record that is not an SQS delivery of a job."""
        message_id, receipt_handle = record["messageId"], record["receiptHandle"]
        if not isinstance(message_id, str) or not isinstance(receipt_handle, str):
            raise TypeError("messageId and receiptHandle must be strings")
        receive_count = int(record["attributes"]["ApproximateReceiveCount"])
        return cls(message_id, receipt_handle, ImageJob.from_json(record["body"]), receive_count)


class WorkerRuntime:
    """SQS batch -> one idempotent ImageWorker.process per record, partial failures reported back."""

    def __init__(self, settings: WorkerSettings) -> None:
        provider = build_provider(
            settings.image_provider,
            settings.bedrock_model_id,
            lambda: aws.client("bedrock-runtime", region=settings.model_region),
            settings.fallback_model_id,
        )
        store = ImageStore(
            lambda: aws.client("s3"), settings.image_bucket, region=settings.region, url_base=settings.image_url_base
        )
        policy = settings.spending_policy()
        governor = (
            RateGovernor(
                Policy(settings.bedrock_requests_per_minute),
                DynamoBudgetStore(lambda: aws.client("dynamodb"), settings.batch_table),
            )
            if settings.governed
            else None
        )
        self.worker = ImageWorker(
            RecordRepository(),
            BatchRepository(),
            StyleCatalog(),
            provider,
            store,
            governor,
            events=HostEvents(lambda: aws.client("events"), settings.event_bus),
            spend=DailySpend(lambda: aws.client("dynamodb"), settings.batch_table, policy) if policy.capped else None,
        )
        self._idempotency = IdempotencyConfig(
            event_key_jmespath="job_id", expires_after_seconds=IDEMPOTENCY_TTL_SECONDS
        )
        self._idempotency_table = settings.idempotency_table
        self._queue_url = settings.job_queue_url
        self._max_attempts = settings.max_receive_count
        self._remaining_ms: Callable[[], int] = lambda: 900_000  # the invocation's clock, set by handle()
        self._deferral: Deferred | None = None  # set when a job of this invocation was deferred: the rest follow

    @cached_property
    def _process_once(self) -> Callable[..., dict]:
        """`worker.process` guarded by Powertools idempotency (its DynamoDB client is made on first use)."""
        persistence = DynamoDBPersistenceLayer(table_name=self._idempotency_table, boto3_client=aws.client("dynamodb"))

        @idempotent_function(data_keyword_argument="job", config=self._idempotency, persistence_store=persistence)
        def process(job: ImageJob, attempt: int, max_attempts: int, may_wait: float) -> dict:
            return self.worker.process(job, attempt=attempt, max_attempts=max_attempts, may_wait=may_wait).as_dict()

        return process

    def _record(self, raw: dict) -> dict:
        record = JobRecord.parse(raw)
        job, attempt = record.job, record.attempt
        if attempt > self._max_attempts:
            self._change_visibility(record.receipt_handle, 0, "could not pass the job on to the dead-letter queue")
            raise AttemptsUsedUp(record.message_id)
        # what this invocation can spend waiting for a Bedrock slot and still finish the job
        slack = self._remaining_ms() / 1000 - aws.JOB_BUDGET_SECONDS
        if slack < 0:
            return self._hand_back(record, 0, "JobsHandedBack", "too little time left for it")
        if self._deferral is not None:
            deferral = self._deferral
            return self._hand_back(record, deferral.delay_seconds, deferral.metric, f"{deferral.why} (an earlier job)")
        logger.append_keys(
            job_id=job.job_id,
            batch_id=job.batch_id,
            user_id=job.pk.removeprefix("USER#"),
            record_type=job.entity_type.label,
            record_id=job.record_id,
            correlation_id=job.correlation_id or None,
        )
        try:
            return self._process_once(job=job, attempt=attempt, max_attempts=self._max_attempts, may_wait=slack)
        except Deferred as deferred:
            if deferred.whole_batch:
                self._deferral = deferred
            return self._hand_back(record, deferred.delay_seconds, deferred.metric, deferred.why)
        except Exception:
            self._delay_retry(record.receipt_handle, attempt)
            raise
        finally:
            logger.remove_keys(["job_id", "batch_id", "user_id", "record_type", "record_id", "correlation_id"])

    def _hand_back(self, record: JobRecord, delay_seconds: int, metric: str, why: str) -> dict:
        """Send the job again as a new message, delayed, and acknowledge this one: SQS would count this
        delivery toward MaxReceiveCount if the message itself went back. Its record is untouched."""
        job = record.job.handed_back(record.receive_count)
        try:
            aws.client("sqs").send_message(
                QueueUrl=self._queue_url, MessageBody=job.to_message(), DelaySeconds=delay_seconds
            )
        except Exception:
            logger.exception("could not send the job again; its own message goes back instead")
            self._change_visibility(record.receipt_handle, delay_seconds, "could not hand the job back")
            raise HandedBack(record.message_id) from None
        metrics.add_metric(name=metric, unit=MetricUnit.Count, value=1)
        logger.info(
            f"handed a job back: {why}",
            extra={"message_id": record.message_id, "delay_seconds": delay_seconds, "deferrals": job.deferrals},
        )
        return {"job_id": job.job_id, "outcome": "handed_back", "delay_seconds": delay_seconds}

    def _delay_retry(self, receipt_handle: str, attempt: int) -> None:
        """Back off by hiding the message for longer each time, instead of sleeping in the function."""
        self._change_visibility(receipt_handle, retry_delay_seconds(attempt), "could not delay the retry")

    def _change_visibility(self, receipt_handle: str, seconds: int, failure: str) -> None:
        try:
            aws.client("sqs").change_message_visibility(
                QueueUrl=self._queue_url, ReceiptHandle=receipt_handle, VisibilityTimeout=seconds
            )
        except Exception:
            # The message comes back after the queue's own visibility timeout instead; nothing is lost.
            logger.exception(failure, extra={"visibility_seconds": seconds})

    def handle(self, event: dict, context: LambdaContext) -> dict[str, Any]:
        """Jobs on their last allowed delivery go first: if time runs out, the others are handed back."""
        self._idempotency.register_lambda_context(context)
        self._remaining_ms = context.get_remaining_time_in_millis
        self._deferral = None
        records = sorted(records_of(event), key=_attempt, reverse=True)
        # Failed records are always reported item by item, even when all fail, so Lambda's SQS poller
        # retries exactly those and the function's Errors metric means a crash, not a throttled model.
        return partial_batch_response(records, self._record, sqs_message_id)
