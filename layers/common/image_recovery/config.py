"""Typed settings, read from the environment once per container.

Each handler validates only what it needs; a missing or empty variable fails the cold start
with a message that names it, instead of a KeyError deep inside the first request.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Annotated, Literal, Self

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from image_recovery.errors import ConfigurationError

NonEmpty = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class CommonSettings(BaseModel):
    # Built on first use: each function validates one of these classes, not all four.
    model_config = ConfigDict(frozen=True, extra="ignore", defer_build=True)

    region: NonEmpty = Field(validation_alias=AliasChoices("AWS_REGION", "AWS_DEFAULT_REGION"))
    travel_table: NonEmpty = Field(validation_alias="TRAVEL_TABLE_NAME")
    batch_table: NonEmpty = Field(validation_alias="BATCH_TABLE_NAME")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        try:
            return cls.model_validate(dict(os.environ if environ is None else environ))
        except ValidationError as error:
            problems = [f"{issue['loc'][0] if issue['loc'] else '?'}: {issue['msg']}" for issue in error.errors()]
            raise ConfigurationError(f"{cls.__name__} is misconfigured: " + "; ".join(problems)) from None


class ApiSettings(CommonSettings):
    job_queue_url: NonEmpty = Field(validation_alias="JOB_QUEUE_URL")
    task_queue_url: NonEmpty = Field(validation_alias="TASK_QUEUE_URL")
    max_ids_per_request: int = Field(default=100, ge=1, le=1000, validation_alias="MAX_IDS_PER_REQUEST")
    # a regeneration left queued or generating this long is taken over by the next request for it
    stuck_after_minutes: int = Field(default=60, ge=1, validation_alias="STUCK_AFTER_MINUTES")


class WorkerSettings(CommonSettings):
    idempotency_table: NonEmpty = Field(validation_alias="IDEMPOTENCY_TABLE_NAME")
    image_bucket: NonEmpty = Field(validation_alias="IMAGE_BUCKET_NAME")
    image_provider: Literal["bedrock", "local"] = Field(validation_alias="IMAGE_PROVIDER")
    bedrock_model_id: NonEmpty = Field(validation_alias="BEDROCK_MODEL_ID")
    # where Bedrock serves the model, when that is not the function's own region (empty: the function's)
    bedrock_region: Annotated[str, StringConstraints(strip_whitespace=True)] = Field(
        default="", validation_alias="BEDROCK_REGION"
    )
    image_url_base: str = Field(default="", validation_alias="IMAGE_URL_BASE")
    job_queue_url: NonEmpty = Field(validation_alias="JOB_QUEUE_URL")
    # Must equal the queue's maxReceiveCount: the worker marks a record failed on the last delivery.
    max_receive_count: int = Field(default=5, ge=1, validation_alias="MAX_RECEIVE_COUNT")
    # The account's Bedrock quota for the model, requests a minute (BedrockRequestsPerMinute); 0: no governor.
    bedrock_requests_per_minute: int = Field(default=0, ge=0, validation_alias="BEDROCK_REQUESTS_PER_MINUTE")

    @property
    def model_region(self) -> str:
        """The region the worker calls Bedrock in."""
        return self.bedrock_region or self.region

    @property
    def governed(self) -> bool:
        """Whether the fleet's rate governor paces the model calls: for Bedrock with a quota configured.
        The local renderer has no quota to keep."""
        return self.image_provider == "bedrock" and self.bedrock_requests_per_minute > 0


class SweepSettings(CommonSettings):
    job_queue_url: NonEmpty = Field(validation_alias="JOB_QUEUE_URL")
    sweep_max_jobs: int = Field(default=1000, ge=1, validation_alias="SWEEP_MAX_JOBS")
    sweep_segments: int = Field(default=4, ge=1, le=64, validation_alias="SWEEP_SEGMENTS")
    stuck_after_minutes: int = Field(default=60, ge=1, validation_alias="STUCK_AFTER_MINUTES")
    # records whose jobs failed for a transient reason: re-queued at most this many times, the n-th no sooner
    # than delay × 2^(n-1) after the failure (0 turns automatic retries off)
    retry_limit: int = Field(default=3, ge=0, le=20, validation_alias="SWEEP_RETRY_LIMIT")
    retry_delay_minutes: int = Field(default=60, ge=1, validation_alias="SWEEP_RETRY_DELAY_MINUTES")


class IndexerSettings(CommonSettings):
    job_queue_url: NonEmpty = Field(validation_alias="JOB_QUEUE_URL")
    image_bucket: NonEmpty = Field(validation_alias="IMAGE_BUCKET_NAME")
    queue_new_records: bool = Field(default=False, validation_alias="QUEUE_NEW_RECORDS")


class TasksSettings(CommonSettings):
    job_queue_url: NonEmpty = Field(validation_alias="JOB_QUEUE_URL")
    image_bucket: NonEmpty = Field(validation_alias="IMAGE_BUCKET_NAME")
    task_queue_url: NonEmpty = Field(validation_alias="TASK_QUEUE_URL")
    repair_segments: int = Field(default=8, ge=1, le=256, validation_alias="REPAIR_SEGMENTS")
    # items per Scan page: bounds the work between two checks of the remaining time
    repair_page_size: int = Field(default=1000, ge=1, le=10_000, validation_alias="REPAIR_PAGE_SIZE")
