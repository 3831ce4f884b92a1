"""Typed settings, read from the environment once per container.

Each handler validates only what it needs; a missing or empty variable fails the cold start
with a message that names it, instead of a KeyError deep inside the first request.

Plain dataclasses and a few parsers rather than pydantic: these checks are a dozen lines, and importing
pydantic would cost every function about 100 ms of cold start (docs/benchmark.md).
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self

from image_recovery.errors import ConfigurationError

if TYPE_CHECKING:
    from image_recovery.spending import SpendingPolicy

_TRUE = {"1", "true", "t", "yes", "y", "on"}
_FALSE = {"0", "false", "f", "no", "n", "off"}


def _non_empty(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value.strip()


def _stripped(value: str) -> str:
    return value.strip()


def _as_is(value: str) -> str:
    return value


def _boolean(value: str) -> bool:
    word = value.strip().lower()
    if word not in _TRUE | _FALSE:
        raise ValueError("must be true or false")
    return word in _TRUE


def _integer(low: int, high: int | None = None) -> Callable[[str], int]:
    def parse(value: str) -> int:
        if not re.fullmatch(r"[+-]?\d+", value.strip()):
            raise ValueError("must be a whole number")
        number = int(value)
        if number < low or (high is not None and number > high):
            raise ValueError(f"must be at least {low}" + (f" and at most {high}" if high is not None else ""))
        return number

    return parse


def _amount(value: str) -> float | None:
    """A non-negative amount such as 0.04; empty: none given."""
    if not value.strip():
        return None
    if not re.fullmatch(r"\d+(\.\d+)?", value.strip()):
        raise ValueError("must be an amount such as 0.04, or empty")
    return float(value)


def _one_of(*choices: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(repr(c) for c in choices)}")
        return value

    return parse


def _variable(*names: str, parse: Callable[[str], Any] = _non_empty, default: Any = dataclasses.MISSING) -> Any:
    """A setting read from the first of `names` that is set (parsed), else `default`; required without one."""
    return dataclasses.field(default=default, metadata={"names": names, "parse": parse})


@dataclass(frozen=True, kw_only=True)
class CommonSettings:
    region: str = _variable("AWS_REGION", "AWS_DEFAULT_REGION")
    travel_table: str = _variable("TRAVEL_TABLE_NAME")
    batch_table: str = _variable("BATCH_TABLE_NAME")
    # conditional marks in flight at once while queueing (image_recovery.queueing): at most the SDK's
    # 10 connections per client
    queue_workers: int = _variable("QUEUE_WORKERS", parse=_integer(1, 10), default=10)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        problems = []
        for setting in dataclasses.fields(cls):
            names = setting.metadata["names"]
            name = next((n for n in names if n in environ), None)
            if name is None:
                if setting.default is dataclasses.MISSING:
                    problems.append(f"{names[0]}: required")
                continue
            try:
                values[setting.name] = setting.metadata["parse"](environ[name])
            except ValueError as error:
                problems.append(f"{name}: {error}")
        if problems:
            raise ConfigurationError(f"{cls.__name__} is misconfigured: " + "; ".join(problems))
        return cls(**values)


@dataclass(frozen=True, kw_only=True)
class BudgetSettings(CommonSettings):
    """The daily image budget (image_recovery.spending): the worker keeps it, the API estimates against it."""

    # the model whose listed price estimates an image's cost (the worker requires it: it draws with it)
    bedrock_model_id: str = _variable("BEDROCK_MODEL_ID", parse=_stripped, default="")
    # model calls a UTC day (DailyImageBudget); 0: no cap
    daily_image_budget: int = _variable("DAILY_IMAGE_BUDGET", parse=_integer(0), default=0)
    # USD an image (EstimatedCostPerImage); empty: the listed price of BEDROCK_MODEL_ID, if known
    cost_per_image: float | None = _variable("ESTIMATED_COST_PER_IMAGE", parse=_amount, default=None)

    def spending_policy(self) -> SpendingPolicy:
        from image_recovery.providers.bedrock import price_per_image
        from image_recovery.spending import SpendingPolicy

        cost = self.cost_per_image if self.cost_per_image is not None else price_per_image(self.bedrock_model_id)
        return SpendingPolicy(self.daily_image_budget, cost)


@dataclass(frozen=True, kw_only=True)
class ApiSettings(BudgetSettings):
    job_queue_url: str = _variable("JOB_QUEUE_URL")
    task_queue_url: str = _variable("TASK_QUEUE_URL")
    max_ids_per_request: int = _variable("MAX_IDS_PER_REQUEST", parse=_integer(1, 1000), default=100)
    # a regeneration left queued or generating this long is taken over by the next request for it
    stuck_after_minutes: int = _variable("STUCK_AFTER_MINUTES", parse=_integer(1), default=60)


@dataclass(frozen=True, kw_only=True)
class WorkerSettings(BudgetSettings):
    idempotency_table: str = _variable("IDEMPOTENCY_TABLE_NAME")
    image_bucket: str = _variable("IMAGE_BUCKET_NAME")
    image_provider: str = _variable("IMAGE_PROVIDER", parse=_one_of("bedrock", "local"))
    bedrock_model_id: str = _variable("BEDROCK_MODEL_ID")
    # the model a job is drawn with when BEDROCK_MODEL_ID is unavailable (a foundation model id; empty: none)
    fallback_model_id: str = _variable("FALLBACK_MODEL_ID", parse=_stripped, default="")
    # where Bedrock serves the model, when that is not the function's own region (empty: the function's)
    bedrock_region: str = _variable("BEDROCK_REGION", parse=_stripped, default="")
    image_url_base: str = _variable("IMAGE_URL_BASE", parse=_as_is, default="")
    job_queue_url: str = _variable("JOB_QUEUE_URL")
    # Must equal the queue's maxReceiveCount: the worker marks a record failed on the last delivery.
    max_receive_count: int = _variable("MAX_RECEIVE_COUNT", parse=_integer(1), default=5)
    # The account's Bedrock quota for the model, requests a minute (BedrockRequestsPerMinute); 0: no governor.
    bedrock_requests_per_minute: int = _variable("BEDROCK_REQUESTS_PER_MINUTE", parse=_integer(0), default=0)
    # the EventBridge bus the host app's events go to (image_recovery.host_events); empty: none
    event_bus: str = _variable("EVENT_BUS_NAME", parse=_stripped, default="")

    @property
    def model_region(self) -> str:
        """The region the worker calls Bedrock in."""
        return self.bedrock_region or self.region

    @property
    def governed(self) -> bool:
        """Whether the fleet's rate governor paces the model calls: for Bedrock with a quota configured.
        The local renderer has no quota to keep."""
        return self.image_provider == "bedrock" and self.bedrock_requests_per_minute > 0


@dataclass(frozen=True, kw_only=True)
class SweepSettings(CommonSettings):
    job_queue_url: str = _variable("JOB_QUEUE_URL")
    sweep_max_jobs: int = _variable("SWEEP_MAX_JOBS", parse=_integer(1), default=1000)
    sweep_segments: int = _variable("SWEEP_SEGMENTS", parse=_integer(1, 64), default=4)
    stuck_after_minutes: int = _variable("STUCK_AFTER_MINUTES", parse=_integer(1), default=60)
    # records whose jobs failed for a transient reason: re-queued at most this many times, the n-th no sooner
    # than delay × 2^(n-1) after the failure (0 turns automatic retries off)
    retry_limit: int = _variable("SWEEP_RETRY_LIMIT", parse=_integer(0, 20), default=3)
    retry_delay_minutes: int = _variable("SWEEP_RETRY_DELAY_MINUTES", parse=_integer(1), default=60)
    # the worker's models, whose lifecycle the sweep checks once a day (image_recovery.model_lifecycle): Bedrock's
    # only, so the local renderer (and a sweep told nothing) checks none
    image_provider: str = _variable("IMAGE_PROVIDER", parse=_one_of("bedrock", "local"), default="local")
    bedrock_model_id: str = _variable("BEDROCK_MODEL_ID", parse=_stripped, default="")
    fallback_model_id: str = _variable("FALLBACK_MODEL_ID", parse=_stripped, default="")
    bedrock_region: str = _variable("BEDROCK_REGION", parse=_stripped, default="")

    @property
    def lifecycle_models(self) -> tuple[str, ...]:
        """The models whose lifecycle the sweep checks: the worker's Bedrock models, the fallback's if any."""
        if self.image_provider != "bedrock":
            return ()
        return tuple(model for model in (self.bedrock_model_id, self.fallback_model_id) if model)

    @property
    def model_region(self) -> str:
        """The region the worker calls Bedrock in, and so the one to ask about its models."""
        return self.bedrock_region or self.region


@dataclass(frozen=True, kw_only=True)
class IndexerSettings(CommonSettings):
    job_queue_url: str = _variable("JOB_QUEUE_URL")
    image_bucket: str = _variable("IMAGE_BUCKET_NAME")
    queue_new_records: bool = _variable("QUEUE_NEW_RECORDS", parse=_boolean, default=False)


@dataclass(frozen=True, kw_only=True)
class TasksSettings(CommonSettings):
    job_queue_url: str = _variable("JOB_QUEUE_URL")
    image_bucket: str = _variable("IMAGE_BUCKET_NAME")
    task_queue_url: str = _variable("TASK_QUEUE_URL")
    repair_segments: int = _variable("REPAIR_SEGMENTS", parse=_integer(1, 256), default=8)
    # items per Scan page: bounds the work between two checks of the remaining time
    repair_page_size: int = _variable("REPAIR_PAGE_SIZE", parse=_integer(1, 10_000), default=1000)
