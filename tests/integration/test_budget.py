"""The daily image budget (issue 16, point 4) through the real API and worker handlers, on moto.

With DailyImageBudget set, the API estimates a request and refuses one over what the day has left unless it is
confirmed; the worker stops drawing when the day's budget is spent, the jobs over it wait (queued, the reason on
their records, never dead-lettered) and resume the next day (UTC) on the simulated clock.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import UTC, datetime

import boto3
import pytest

from devtools.audit import audit, missing_keys
from devtools.lambda_runtime import SimulatedClock, SqsPoller, http_event
from devtools.seed import ALICE, put_items, trip
from image_recovery.spending import SPEND_KEY_PREFIX, BudgetExhausted, seconds_until_next_day
from tests.helpers import REGION, call_api, metric_total, metrics_emitted, table_item

pytestmark = pytest.mark.integration

BUDGET = "3"
TRIPS = 5


@pytest.fixture
def clock():
    with SimulatedClock() as simulated:
        yield simulated


@pytest.fixture
def five_trips(stack, deliver_stream) -> list[tuple[str, str]]:
    put_items(
        stack.physical("TravelTable"),
        [trip(ALICE, f"t{n}", f"Trip {n}", f"2026-03-01T00:00:0{n}.000Z") for n in range(TRIPS)],
    )
    deliver_stream()
    return missing_keys(stack)


def queue_all(api, **body: bool) -> tuple[int, dict]:
    event = http_event("api-queue-all.json", sub=ALICE)
    event["body"] = json.dumps({"all": True, **body})
    return call_api(api, event)


def job_queue_depth(stack, logical_id: str = "JobQueue") -> int:
    names = [f"ApproximateNumberOfMessages{state}" for state in ("", "NotVisible", "Delayed")]
    attributes = boto3.client("sqs", region_name=REGION).get_queue_attributes(
        QueueUrl=stack.physical(logical_id), AttributeNames=names
    )["Attributes"]
    return sum(int(attributes[name]) for name in names)


def test_a_request_over_the_days_budget_is_refused_with_its_estimate_and_changes_nothing(stack, handler, five_trips):
    api = handler("api", DAILY_IMAGE_BUDGET=BUDGET)

    status, budget = call_api(api, http_event("api-budget.json", sub=ALICE))
    assert status == 200
    assert budget["dailyImages"] == 3 and budget["usedToday"] == 0 and budget["remainingToday"] == 3
    assert budget["estimatedCostPerImage"] == 0.04 and budget["currency"] == "USD"  # the default model's price

    status, refused = queue_all(api)
    assert status == 409 and refused["error"]["code"] == "over_budget"
    assert "about 5 images, about $0.20" in refused["error"]["message"]
    assert refused["error"]["details"]["images"] == TRIPS and refused["error"]["details"]["remainingToday"] == 3
    # nothing written: no record queued, no message sent
    assert all("imageStatus" not in table_item(stack, *key) for key in five_trips)
    assert job_queue_depth(stack) == 0

    status, confirmed = queue_all(api, confirmOverBudget=True)
    assert status == 202 and confirmed["summary"]["trips"]["queued"] == TRIPS


def test_a_bulk_request_beyond_its_first_page_is_counted_whole_even_without_the_index(stack, handler):
    # 105 trips, more than the request's first page; the index is not known complete, so the table is read
    put_items(
        stack.physical("TravelTable"),
        [trip(ALICE, f"b{n:03}", f"Trip {n}", f"2026-03-01T00:{n // 60:02}:{n % 60:02}.000Z") for n in range(105)],
    )
    status, refused = queue_all(handler("api", DAILY_IMAGE_BUDGET=BUDGET))
    assert (status, refused["error"]["details"]["images"]) == (409, 105)
    assert job_queue_depth(stack) == 0 and job_queue_depth(stack, "TaskQueue") == 0


def test_without_a_budget_nothing_is_refused_and_the_estimate_still_answers(stack, handler, five_trips):
    api = handler("api", ESTIMATED_COST_PER_IMAGE="0.5")
    status, budget = call_api(api, http_event("api-budget.json", sub=ALICE))
    assert (status, budget["dailyImages"], budget["remainingToday"], budget["estimatedCostPerImage"]) == (
        200,
        None,
        None,
        0.5,
    )
    assert queue_all(api)[0] == 202


def test_the_worker_stops_at_the_days_budget_and_the_rest_resume_the_next_day(
    stack, handler, five_trips, clock, capsys
):
    # Given five jobs queued, confirmed over a budget of three images a day
    api = handler("api", DAILY_IMAGE_BUDGET=BUDGET)
    assert queue_all(api, confirmOverBudget=True)[0] == 202
    worker = handler("worker", DAILY_IMAGE_BUDGET=BUDGET)
    poller = SqsPoller(stack.physical("JobQueue"), stack.arns["JobQueue"], worker, region=REGION, batch_size=10)
    first_day = clock_day()

    # When the worker takes them all in one batch
    delivery = poller.poll()

    # Then three images were drawn, and two jobs wait with the reason on their still-queued records
    assert (delivery.received, delivery.failed) == (TRIPS, 0)
    states = Counter((item.get("imageStatus"), item.get("imageError")) for item in items(stack, five_trips))
    assert states == {("ready", None): 3, ("queued", "budget_exhausted"): 2}
    assert spent(stack, first_day) == 3
    assert call_api(api, http_event("api-budget.json", sub=ALICE))[1]["remainingToday"] == 0

    # When the next day (UTC) begins and the queue drains
    clock.advance(seconds=seconds_until_next_day(time.time()) + 1)
    poller.drain(clock)

    # Then the two that waited (handed back once each, without an attempt charged) were drawn
    out = capsys.readouterr().out
    assert metric_total(metrics_emitted(out), BudgetExhausted.metric) == 2
    result = audit(stack, five_trips)
    assert (result.ready, dict(result.failed), result.lost) == (TRIPS, {}, [])
    assert {item["imageAttempts"] for item in items(stack, five_trips)} == {1}
    assert job_queue_depth(stack, "JobDeadLetterQueue") == 0
    # three images the first day, the other two the next
    days = days_spent(stack)
    assert days[first_day] == 3 and sorted(days.values()) == [2, 3] and min(days) == first_day


def clock_day() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d")


def items(stack, keys) -> list[dict]:
    return [table_item(stack, *key) for key in keys]


def spent(stack, day: str) -> int:
    return days_spent(stack).get(day, 0)


def days_spent(stack) -> dict[str, int]:
    """The day counters of the budget in the batch table: day -> images drawn."""
    items = boto3.client("dynamodb", region_name=REGION).scan(TableName=stack.physical("BatchTable"))["Items"]
    return {
        item["batchId"]["S"].removeprefix(SPEND_KEY_PREFIX): int(item["images"]["N"])
        for item in items
        if item["batchId"]["S"].startswith(SPEND_KEY_PREFIX)
    }
