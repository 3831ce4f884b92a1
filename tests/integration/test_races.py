"""Races on the embedded AWS (moto's server, real HTTP): everything that queues, at once, for the same records.

Two bulk requests, a single request and a sweep start together from separate threads, each in its own
"container" (its own handler module), as concurrent Lambda invocations would; the fan-out of the bulk
requests then runs on two task workers at once. Every record must be queued exactly once: one message
on the job queue, and the record's job id is that message's.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable

import pytest

from devtools.embedded_aws import REGION, embedded_aws, use_function_environment
from devtools.lambda_runtime import LambdaContext, drain_queue, http_event, load_event, load_handler
from devtools.seed import put_items, trip
from devtools.streams import LocalStream
from tests.helpers import sized, table_item, take_messages

pytestmark = [pytest.mark.integration, pytest.mark.soak]

QUIET = {"POWERTOOLS_LOG_LEVEL": "ERROR", "POWERTOOLS_METRICS_DISABLED": "true"}
LARGE = sized(ci=120, soak=400)  # more than one request queues at once (100): the rest fans out as tasks
ROUNDS = sized(ci=2, soak=10)


@pytest.fixture
def stack():
    with embedded_aws() as local:  # after conftest's environment fixture, which clears AWS_ENDPOINT_URL
        yield local


def load(stack, function: str):
    """A fresh container of one function, its environment from template.yaml."""
    offline = {"IMAGE_PROVIDER": "local"} if function == "sweep" else {}  # no Bedrock model lifecycle to check
    use_function_environment(stack, function, **QUIET, **offline)
    return load_handler(function)


def at_once(calls: dict[str, Callable[[], object]]) -> dict[str, object]:
    """Run the calls on their own threads, released together; return each one's result."""
    start = threading.Barrier(len(calls))
    results: dict[str, object] = {}
    errors: list[BaseException] = []

    def run(name: str, call: Callable[[], object]) -> None:
        start.wait()
        try:
            results[name] = call()
        except BaseException as error:  # re-raised in the test's thread below
            errors.append(error)

    threads = [threading.Thread(target=run, args=item) for item in calls.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    if errors:
        raise errors[0]
    return results


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_two_bulk_requests_a_single_request_and_a_sweep_queue_each_record_once(stack, round_):
    user = f"racer-{round_}"
    trips = [
        trip(user, f"r{n:04}", f"Trip {n}", f"2025-{1 + n % 12:02}-01T00:00:{n % 60:02}.000Z", "") for n in range(LARGE)
    ]
    put_items(stack.physical("TravelTable"), trips, region=REGION)
    LocalStream(stack).deliver(load(stack, "indexer"))
    take_messages(stack)  # earlier rounds' leftovers, if any, are not this round's business
    apis = [load(stack, "api") for _ in range(3)]
    sweep = load(stack, "sweep")
    single = {"tripIds": [t["id"] for t in trips[::7]]}  # spread over the bulk requests' pages

    answers = at_once(
        {
            "bulk-1": lambda: apis[0].lambda_handler(http_event("api-queue-all.json", sub=user), LambdaContext()),
            "bulk-2": lambda: apis[1].lambda_handler(http_event("api-queue-all.json", sub=user), LambdaContext()),
            "single": lambda: apis[2].lambda_handler(
                http_event("api-queue-selected.json", sub=user, body=single), LambdaContext()
            ),
            "sweep": lambda: sweep.lambda_handler(load_event("sweep-scheduled.json"), LambdaContext()),
        }
    )
    task_workers = [load(stack, "tasks") for _ in range(2)]
    drained = at_once(
        {
            f"tasks-{n}": lambda tasks=tasks: drain_queue(
                stack.physical("TaskQueue"), stack.arns["TaskQueue"], tasks, region=REGION, batch_size=10
            )
            for n, tasks in enumerate(task_workers)
        }
    )

    assert [result["failed"] for result in drained.values()] == [0, 0]
    assert {name: answers[name]["statusCode"] for name in ("bulk-1", "bulk-2", "single")} == dict.fromkeys(
        ("bulk-1", "bulk-2", "single"), 202
    )
    jobs = [job for job in take_messages(stack) if job["pk"] == f"USER#{user}"]
    per_record = Counter(job["sk"] for job in jobs)
    assert set(per_record) == {t["SK"] for t in trips}
    assert max(per_record.values()) == 1
    for job in jobs:
        assert table_item(stack, job["pk"], job["sk"])["imageJobId"] == job["jobId"]
