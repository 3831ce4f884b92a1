"""Wiring: the one place that turns settings into ready objects, once per container.

Each entry point imports only what it wires (the API's resolver, the sweep's scanner, the worker's
batch processing and idempotency live in their own modules), because every import is cold-start time.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from image_recovery import aws, models
from image_recovery.batches import BatchRepository
from image_recovery.config import (
    ApiSettings,
    CommonSettings,
    IndexerSettings,
    SweepSettings,
    TasksSettings,
    WorkerSettings,
)
from image_recovery.index_state import IndexState
from image_recovery.queueing import JobQueue, Queuer
from image_recovery.repository import RecordRepository
from image_recovery.styles import StyleCatalog

if TYPE_CHECKING:
    from image_recovery.api import Api
    from image_recovery.cleanup import ImageCleaner
    from image_recovery.stream import StreamIndexer
    from image_recovery.sweep import Sweeper
    from image_recovery.tasks_runtime import TasksRuntime
    from image_recovery.worker_runtime import WorkerRuntime


def _bind(settings: CommonSettings) -> None:
    models.bind(travel_table=settings.travel_table, batch_table=settings.batch_table, region=settings.region)


def _job_queue(settings: ApiSettings | SweepSettings | IndexerSettings | TasksSettings) -> JobQueue:
    return JobQueue(lambda: aws.client("sqs"), settings.job_queue_url)


def _queuer(settings: ApiSettings | SweepSettings | IndexerSettings | TasksSettings) -> Queuer:
    return Queuer(RecordRepository(), BatchRepository(), _job_queue(settings), workers=settings.queue_workers)


def api(settings: ApiSettings) -> Api:
    from image_recovery.api import build_api
    from image_recovery.recovery import RecoveryService
    from image_recovery.spending import DailySpend
    from image_recovery.tasks import TaskQueue

    _bind(settings)
    service = RecoveryService(
        RecordRepository(),
        BatchRepository(),
        StyleCatalog(),
        _queuer(settings),
        TaskQueue(lambda: aws.client("sqs"), settings.task_queue_url),
        IndexState(settings.travel_table),
        max_ids_per_request=settings.max_ids_per_request,
        stuck_after=timedelta(minutes=settings.stuck_after_minutes),
        spend=DailySpend(lambda: aws.client("dynamodb"), settings.batch_table, settings.spending_policy()),
    )
    return build_api(service)


def sweeper(settings: SweepSettings) -> Sweeper:
    from image_recovery.sweep import RetryPolicy, Sweeper

    _bind(settings)
    lifecycle = None
    if settings.lifecycle_models:
        from image_recovery.model_lifecycle import ModelLifecycle

        region = settings.model_region
        lifecycle = ModelLifecycle(lambda: aws.client("bedrock", region=region), settings.lifecycle_models)
    return Sweeper(
        RecordRepository(),
        StyleCatalog(),
        _queuer(settings),
        _job_queue(settings),
        IndexState(settings.travel_table),
        travel_table=settings.travel_table,
        max_jobs=settings.sweep_max_jobs,
        segments=settings.sweep_segments,
        stuck_after=timedelta(minutes=settings.stuck_after_minutes),
        retries=RetryPolicy(settings.retry_limit, timedelta(minutes=settings.retry_delay_minutes)),
        lifecycle=lifecycle,
    )


def worker(settings: WorkerSettings) -> WorkerRuntime:
    from image_recovery.worker_runtime import WorkerRuntime

    _bind(settings)
    return WorkerRuntime(settings)


def _cleaner(settings: IndexerSettings | TasksSettings) -> ImageCleaner:
    from image_recovery.cleanup import ImageCleaner
    from image_recovery.storage import ImageStore

    return ImageCleaner(
        RecordRepository(), ImageStore(lambda: aws.client("s3"), settings.image_bucket, region=settings.region)
    )


def indexer(settings: IndexerSettings) -> StreamIndexer:
    from image_recovery.stream import StreamIndexer

    _bind(settings)
    return StreamIndexer(
        StyleCatalog(),
        _queuer(settings),
        IndexState(settings.travel_table),
        _cleaner(settings),
        queue_new_records=settings.queue_new_records,
    )


def tasks(settings: TasksSettings) -> TasksRuntime:
    from image_recovery.tasks import TaskQueue, TaskRunner
    from image_recovery.tasks_runtime import TasksRuntime

    _bind(settings)
    runner = TaskRunner(
        RecordRepository(),
        BatchRepository(),
        _queuer(settings),
        TaskQueue(lambda: aws.client("sqs"), settings.task_queue_url),
        IndexState(settings.travel_table),
        _cleaner(settings),
        travel_table=settings.travel_table,
        repair_segments=settings.repair_segments,
        repair_page_size=settings.repair_page_size,
    )
    return TasksRuntime(runner)
