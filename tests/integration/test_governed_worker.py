"""The Bedrock rate governor through the real worker handler, on moto, with a Bedrock that pushes back.

The worker runs with the Bedrock provider and the template's governor (BedrockRequestsPerMinute, the budget
row in the batch table); a stand-in answers InvokeModel with an image, or with ThrottlingException when the
request comes sooner than its own quota allows. The queue drains on a simulated clock: the worker's waits
for a slot, retry delays and deferrals take no time. Every record must end with its image, and no job may
reach the dead-letter queue, however often it was deferred.
"""

from __future__ import annotations

import io
import json
import time
from collections import Counter

import boto3
import pytest
from PIL import Image

from devtools.audit import audit, missing_keys
from devtools.faults import Fault, FaultInjector, bedrock_stand_in
from devtools.lambda_runtime import SimulatedClock, SqsPoller, http_event, waits_on
from devtools.seed import ALICE, put_items, trip
from image_recovery import aws
from image_recovery.governor import DynamoBudgetStore, Policy
from tests.helpers import REGION, call_api, metric_total, metrics_emitted, table_item

pytestmark = pytest.mark.integration

MODEL = "stability.stable-image-core-v1:1"


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "teal").save(buffer, format="PNG")
    return buffer.getvalue()


class QuotaStandIn:
    """InvokeModel behind a quota of `per_minute` requests: a request sooner than one interval after the last
    one it let through is throttled, as Bedrock answers; the others get an image."""

    def __init__(self, per_minute: float) -> None:
        self.interval = 60 / per_minute
        self.admitted: list[float] = []
        self.throttled = 0
        self._image = bedrock_stand_in(_png())
        self._throttle = Fault("bedrock-runtime", "InvokeModel", error="ThrottlingException", message="Too many")

    def __call__(self, params: dict) -> dict:
        now = time.time()
        if self.admitted and now - self.admitted[-1] < self.interval:
            self.throttled += 1
            raise self._throttle.exception("InvokeModel")
        self.admitted.append(now)
        return self._image(params)


@pytest.fixture
def clock():
    with SimulatedClock() as simulated:
        yield simulated


@pytest.fixture
def queued(stack, handler, deliver_stream) -> list[tuple[str, str]]:
    """Fifteen trips of one user, missing their images and queued through the API."""
    put_items(
        stack.physical("TravelTable"),
        [trip(ALICE, f"t{n:02}", f"Trip {n}", f"2026-03-01T00:00:{n:02}.000Z") for n in range(15)],
    )
    deliver_stream()
    keys = missing_keys(stack)
    status, _ = call_api(handler("api"), http_event("api-queue-all.json", sub=ALICE))
    assert (status, len(keys)) == (202, 15)
    return keys


def governed_worker(handler, clock):
    """A new worker container with the template's environment and the Bedrock provider; its waits for a
    slot move the simulated clock on."""
    worker = handler("worker", IMAGE_PROVIDER="bedrock", BEDROCK_MODEL_ID=MODEL)
    assert worker.runtime.worker._governor is not None  # the template's BedrockRequestsPerMinute turns it on
    return waits_on(worker, clock)


def dead_letters(stack) -> int:
    attributes = boto3.client("sqs", region_name=REGION).get_queue_attributes(
        QueueUrl=stack.physical("JobDeadLetterQueue"), AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"])


def every_record_has_its_image(stack, keys) -> None:
    result = audit(stack, keys)
    assert (result.lost, result.duplicated, result.dangling, result.orphans) == ([], [], [], [])
    assert (result.ready, dict(result.failed)) == (len(keys), {})
    assert dead_letters(stack) == 0


def test_a_bedrock_that_throttles_pushes_the_fleet_back_and_every_job_ends_with_its_image(
    stack, handler, queued, clock
):
    # Given two worker containers sharing the template's budget (60 a minute), and a Bedrock whose real
    # quota is half of that
    bedrock = QuotaStandIn(per_minute=30)
    containers = [governed_worker(handler, clock) for _ in range(2)]
    pollers = [
        SqsPoller(stack.physical("JobQueue"), stack.arns["JobQueue"], worker, region=REGION, batch_size=5)
        for worker in containers
    ]
    injector = FaultInjector(answers={("bedrock-runtime", "InvokeModel"): bedrock})

    # When they drain the queue in turns
    with injector.active():
        while sum(poller.poll().received for poller in pollers) or pollers[0].in_flight():
            clock.advance(seconds=30)  # past the shortest retry delay

    # Then Bedrock pushed back, the shared rate came down from the ceiling, and its throttles stayed a few
    policy = Policy(60)
    budget = DynamoBudgetStore(lambda: aws.client("dynamodb"), stack.physical("BatchTable")).apply(lambda b: (None, b))
    assert bedrock.throttled >= 1
    assert budget.rate < policy.ceiling and budget.decreased_at > 0
    assert bedrock.throttled <= len(queued)
    # and every record ended with its image, no job in the dead-letter queue
    every_record_has_its_image(stack, queued)
    assert len(bedrock.admitted) == len(queued)


def test_a_job_deferred_more_often_than_max_receive_count_is_never_dead_lettered_nor_charged_an_attempt(
    stack, handler, queued, clock, capsys
):
    # Given a worker whose invocations can wait at most half a second for a slot (57 a minute: one a second),
    # so that of each batch one job gets a slot and the rest are deferred
    sent: list[dict] = []

    def resent(service: str, operation: str, params: dict) -> None:
        if (service, operation) == ("sqs", "SendMessage"):
            sent.append({**json.loads(params["MessageBody"]), "delay": params["DelaySeconds"]})

    injector = FaultInjector(answers={("bedrock-runtime", "InvokeModel"): bedrock_stand_in(_png())}, observers=[resent])
    worker = governed_worker(handler, clock)
    slack_ms = int((aws.JOB_BUDGET_SECONDS + 0.5) * 1000)
    poller = SqsPoller(
        stack.physical("JobQueue"), stack.arns["JobQueue"], worker, region=REGION, batch_size=10, remaining_ms=slack_ms
    )

    # When it drains the queue
    with injector.active():
        poller.drain(clock)

    # Then jobs went back again and again, more often than SQS would deliver one message before dead-lettering it
    max_receive_count = int(stack.function_environment("WorkerFunction")["MAX_RECEIVE_COUNT"])
    deferrals = Counter(message["jobId"] for message in sent)
    assert max(deferrals.values()) > max_receive_count
    assert all(message["delay"] >= 1 and "earlierAttempts" not in message for message in sent)
    assert metric_total(metrics_emitted(capsys.readouterr().out), "JobsDeferred") == len(sent)
    # and every record ended with its image after one attempt, none in the dead-letter queue
    every_record_has_its_image(stack, queued)
    assert {table_item(stack, *key).get("imageAttempts") for key in queued} == {1}
