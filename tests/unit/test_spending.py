"""The daily image budget's arithmetic and its counter (image_recovery.spending), on moto's batch table."""

from __future__ import annotations

from datetime import UTC, datetime

import boto3
import pytest

from image_recovery.config import WorkerSettings
from image_recovery.errors import ConfigurationError
from image_recovery.providers.bedrock import price_per_image
from image_recovery.spending import DailySpend, SpendingPolicy, seconds_until_next_day

REGION = "us-east-1"
LATE = datetime(2026, 12, 2, 23, 59, 30, tzinfo=UTC).timestamp()  # 30 s before midnight, UTC


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def spend(tables, daily: int, clock: Clock) -> DailySpend:
    client = boto3.client("dynamodb", region_name=REGION)
    return DailySpend(lambda: client, tables.physical("BatchTable"), SpendingPolicy(daily, 0.04), clock)


def test_prices_are_looked_up_by_model_id_with_or_without_an_inference_profile_prefix():
    assert price_per_image("stability.stable-image-ultra-v1:1") == 0.14
    assert price_per_image("us.stability.stable-image-core-v1:1") == 0.04
    assert price_per_image("stability.unknown-v9:0") is None
    assert SpendingPolicy(0, 0.04).estimate(250) == 10.0 and SpendingPolicy(0, None).estimate(3) is None


def test_the_configured_cost_wins_over_the_listed_price_and_a_malformed_one_fails_the_cold_start():
    environment = {
        "AWS_REGION": REGION,
        "TRAVEL_TABLE_NAME": "t",
        "BATCH_TABLE_NAME": "b",
        "IDEMPOTENCY_TABLE_NAME": "i",
        "IMAGE_BUCKET_NAME": "bucket",
        "IMAGE_PROVIDER": "bedrock",
        "BEDROCK_MODEL_ID": "stability.stable-image-core-v1:1",
        "JOB_QUEUE_URL": "https://sqs/q",
        "DAILY_IMAGE_BUDGET": "300",
    }
    assert WorkerSettings.from_env(environment).spending_policy() == SpendingPolicy(300, 0.04)
    configured = WorkerSettings.from_env({**environment, "ESTIMATED_COST_PER_IMAGE": "0.5"})
    assert configured.spending_policy().cost_per_image == 0.5
    with pytest.raises(ConfigurationError, match="ESTIMATED_COST_PER_IMAGE"):
        WorkerSettings.from_env({**environment, "ESTIMATED_COST_PER_IMAGE": "-1"})


def test_the_days_budget_is_taken_up_to_its_size_then_refused_until_midnight_utc(tables):
    clock = Clock(LATE)
    budget = spend(tables, 2, clock)
    assert [budget.take(), budget.take(), budget.take()] == [True, True, False]
    assert budget.wait_seconds() == 31  # until just past midnight, not the 15 minutes SQS allows at most
    assert budget.status().remaining_today == 0 and budget.status().resets_at == "2026-12-03T00:00:00Z"
    # another container sees the same counter
    assert spend(tables, 2, clock).take() is False

    clock.now += 31  # the next day (UTC): a new counter
    assert budget.take() is True
    assert budget.status().used_today == 1


def test_a_unit_given_back_can_be_taken_again_and_a_new_days_counter_never_goes_below_zero(tables):
    clock = Clock(LATE - 3600)
    budget = spend(tables, 1, clock)
    assert budget.take() is True
    budget.give_back()
    assert budget.status().used_today == 0
    assert spend(tables, 1, clock).take() is True  # a fresh container: the cache of "spent" is per container
    clock.now += 7200  # past midnight: today's counter owes nothing
    budget.give_back()
    assert budget.status().used_today == 0


def test_no_budget_takes_nothing_and_reports_no_cap(tables):
    budget = spend(tables, 0, Clock(LATE))
    assert all(budget.take() for _ in range(5))
    assert budget.status().as_json()["dailyImages"] is None
    assert seconds_until_next_day(LATE) == 30
