"""Faults injected into AWS calls while the real handlers run on moto: nothing is lost or duplicated.

Each test queues every missing record of the sample data through the API, lets the worker run with
faults in its AWS calls (before a call, or after it took effect with the answer lost, or the process
dying on the spot), drains the queue on a simulated clock (retry delays and visibility timeouts pass
at once) and then audits the end state: every record that was missing is ready with exactly one stored
image, or failed with a reason; no URL points at nothing; no stored image is unreferenced.
"""

from __future__ import annotations

import io
import json
import threading
from collections import Counter

import boto3
import pytest
from PIL import Image

from devtools.audit import Audit, audit, count_write_backs, missing_keys
from devtools.faults import CRASH, TIMEOUT, Fault, FaultInjector, bedrock_stand_in, updates_attribute
from devtools.lambda_runtime import (
    LambdaContext,
    SimulatedClock,
    SqsPoller,
    http_event,
    load_event,
    sqs_event,
    waits_on,
)
from devtools.ops import copy_messages
from devtools.seed import ALICE, BOB, put_items, trip
from image_recovery import aws
from image_recovery.index_state import IndexState
from image_recovery.indexing import index_existing_records
from image_recovery.providers.local import LocalImageProvider
from image_recovery.sweep import SweepIncomplete
from tests.helpers import REGION, call_api, table_item, take_messages

pytestmark = pytest.mark.integration

MAX_RECEIVE_COUNT = 5  # the template's default
STUCK_AFTER_SECONDS = 2 * 3600  # beyond the template's default StuckJobMinutes (60)
WRITE_BACK = updates_attribute("imageUrl")


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "teal").save(buffer, format="PNG")
    return buffer.getvalue()


PNG = _png()


@pytest.fixture
def clock():
    with SimulatedClock() as simulated:
        yield simulated


@pytest.fixture
def missing(seeded) -> list[tuple[str, str]]:
    keys = missing_keys(seeded)
    assert len(keys) >= 6  # the sample data: records of two users in all three missing forms
    return keys


@pytest.fixture
def queued(seeded, handler, missing) -> list[tuple[str, str]]:
    """Every missing record queued through the API, before any fault is switched on."""
    api = handler("api")
    for user in (ALICE, BOB):
        status, _ = call_api(api, http_event("api-queue-all.json", sub=user))
        assert status == 202
    return missing


def run(stack, worker, clock, injector: FaultInjector) -> list:
    poller = SqsPoller(stack.physical("JobQueue"), stack.arns["JobQueue"], worker, region=REGION)
    with injector.active():
        return poller.drain(clock)


def judged(stack, missing, write_backs: Counter | None = None) -> Audit:
    result = audit(stack, missing, write_backs)
    assert result.lost == []
    assert result.duplicated == []
    assert result.dangling == []
    assert result.orphans == []
    return result


def dead_letters(stack) -> int:
    sqs = boto3.client("sqs", region_name=REGION)
    attributes = sqs.get_queue_attributes(
        QueueUrl=stack.physical("JobDeadLetterQueue"), AttributeNames=["ApproximateNumberOfMessages"]
    )
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


@pytest.mark.parametrize("when", ["before", "after"])
def test_an_upload_that_fails_is_retried_and_each_record_ends_with_one_image(stack, handler, queued, clock, when):
    """`after`: the object was stored but the answer was lost; the retry overwrites that same object."""
    fault = Fault("s3", "PutObject", when=when, error="InternalError", times=3)
    injector = FaultInjector([fault])

    run(stack, handler("worker"), clock, injector)

    assert injector.strikes(fault) == 3
    assert judged(stack, queued).ready == len(queued)


def test_an_upload_that_always_fails_ends_failed_with_its_reason_and_stores_nothing(stack, handler, queued, clock):
    injector = FaultInjector([Fault("s3", "PutObject")])

    run(stack, handler("worker"), clock, injector)

    result = judged(stack, queued)
    assert result.failed == {"storage_error": len(queued)}
    assert injector.calls[("s3", "PutObject")] == MAX_RECEIVE_COUNT * len(queued)
    assert dead_letters(stack) == len(queued)  # for a redrive once the bucket works again


@pytest.fixture
def bedrock_worker(handler, clock):
    """The worker with the Bedrock provider and the template's rate governor, whose waits for a slot move
    the simulated clock on instead of sleeping."""
    return waits_on(
        handler("worker", IMAGE_PROVIDER="bedrock", BEDROCK_MODEL_ID="stability.stable-image-core-v1:1"), clock
    )


def bedrock(faults: list[Fault], **stand_in) -> FaultInjector:
    return FaultInjector(faults, answers={("bedrock-runtime", "InvokeModel"): bedrock_stand_in(PNG, **stand_in)})


def test_bedrock_throttling_and_server_errors_are_retried_until_the_image_comes(stack, bedrock_worker, queued, clock):
    faults = [
        Fault("bedrock-runtime", "InvokeModel", error="ThrottlingException", times=4),
        Fault("bedrock-runtime", "InvokeModel", error="ServiceUnavailableException", times=2),
        Fault("bedrock-runtime", "InvokeModel", error=TIMEOUT, times=1),
    ]
    injector = bedrock(faults)

    run(stack, bedrock_worker, clock, injector)

    assert sum(injector.strikes(f) for f in faults) == 7
    assert judged(stack, queued).ready == len(queued)
    stored = boto3.client("s3", region_name=REGION).get_object(
        Bucket=stack.physical("ImageBucket"), Key=table_item(stack, *queued[0])["imageKey"]
    )
    assert stored["Body"].read() == PNG


@pytest.mark.parametrize(
    ("error", "reason"), [("ThrottlingException", "throttled"), ("InternalServerException", "provider_error")]
)
def test_bedrock_failing_every_delivery_ends_failed_and_dead_lettered(
    stack, bedrock_worker, queued, clock, error, reason
):
    injector = bedrock([Fault("bedrock-runtime", "InvokeModel", error=error)])

    run(stack, bedrock_worker, clock, injector)

    assert judged(stack, queued).failed == {reason: len(queued)}
    assert dead_letters(stack) == len(queued)


def test_a_model_the_deployment_may_not_use_is_retried_alarmed_dead_lettered_and_redriven_after_the_fix(
    stack, bedrock_worker, queued, clock, capsys
):
    """Bedrock denies every call (the role or the account may not use the model): no record is failed
    for good. Each job is retried with growing delays, its record shows why, the ModelUnavailable metric
    (and its alarm) counts every refused delivery, and after MaxReceiveCount the message waits in the
    dead-letter queue. Once access is granted, a redrive brings every image."""
    denied = Fault(
        "bedrock-runtime",
        "InvokeModel",
        error="AccessDeniedException",
        message="You don't have access to the model with the specified model ID.",
    )
    delays: list[int] = []
    aws.client("sqs").meta.events.register(
        "provide-client-params.sqs.ChangeMessageVisibility",
        lambda params, **_: delays.append(params["VisibilityTimeout"]),
    )
    poller = SqsPoller(stack.physical("JobQueue"), stack.arns["JobQueue"], bedrock_worker, region=REGION)
    capsys.readouterr()

    with bedrock([denied]).active() as injector:
        first = poller.poll()
        retrying = table_item(stack, *queued[0])
        poller.drain(clock)

    assert first.failed == first.received > 0
    assert (retrying["imageStatus"], retrying["imageError"]) == ("generating", "model_access_denied")
    assert "You don't have access to the model" in retrying["imageErrorDetail"]
    assert injector.strikes(denied) == MAX_RECEIVE_COUNT * len(queued)
    assert sorted(Counter(delays).items()) == [(30 * 2**n, len(queued)) for n in range(MAX_RECEIVE_COUNT)]
    assert judged(stack, queued).failed == {"model_access_denied": len(queued)}
    assert dead_letters(stack) == len(queued)
    emitted = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    assert sum(sum(m.get("ModelUnavailable", [])) for m in emitted) == MAX_RECEIVE_COUNT * len(queued)
    assert all(m["service"] == "image-recovery" for m in emitted if "ModelUnavailable" in m)

    # the role is fixed; the operator redrives the dead-letter queue
    sqs = boto3.client("sqs", region_name=REGION)
    report = copy_messages(sqs, stack.physical("JobDeadLetterQueue"), stack.physical("JobQueue"), wait_seconds=0)
    run(stack, bedrock_worker, clock, bedrock([]))

    assert report.moved == len(queued)
    assert judged(stack, queued).ready == len(queued)
    assert dead_letters(stack) == 0
    image = table_item(stack, *queued[0])
    stored = boto3.client("s3", region_name=REGION).get_object(
        Bucket=stack.physical("ImageBucket"), Key=image["imageKey"]
    )
    assert stored["Body"].read() == PNG


def test_a_prompt_the_content_filter_refuses_fails_at_once_and_the_others_succeed(stack, bedrock_worker, queued, clock):
    injector = bedrock([], refuse=lambda prompt: "Eiffel" in prompt)

    run(stack, bedrock_worker, clock, injector)

    result = judged(stack, queued)
    assert result.failed == {"content_filtered": 1}
    assert result.ready == len(queued) - 1
    assert injector.calls[("bedrock-runtime", "InvokeModel")] == len(queued)  # no retry of a refusal
    assert dead_letters(stack) == 0


def test_a_worker_that_dies_between_upload_and_write_back_loses_nothing(stack, handler, queued, clock):
    crash = Fault("dynamodb", "UpdateItem", error=CRASH, where=WRITE_BACK, times=3)
    write_backs: Counter = Counter()
    injector = FaultInjector([crash], observers=[count_write_backs(write_backs)])

    deliveries = run(stack, handler("worker"), clock, injector)

    assert sum(d.crashed for d in deliveries) == 3
    assert judged(stack, queued, write_backs).ready == len(queued)
    assert set(write_backs) == set(queued)


def test_a_job_dead_on_every_delivery_is_sent_again_by_the_sweep_and_its_image_cleaned_up(
    stack, handler, queued, clock
):
    """Each crash takes the whole batch down with it, as on Lambda. The crashing job's record stays
    generating with an image in the bucket that nobody references, until the sweep sees no progress for
    StuckJobMinutes and a job queue that holds nothing: the job's message is lost (in the dead-letter queue),
    so the sweep sends it again, as the same job, whose next delivery stores its image over the lost one."""
    trip = (f"USER#{ALICE}", "TRIP#trip-euro")
    crash = Fault(
        "dynamodb", "UpdateItem", error=CRASH, where=lambda p: WRITE_BACK(p) and p["Key"]["SK"]["S"] == trip[1]
    )
    worker = handler("worker")
    run(stack, worker, clock, FaultInjector([crash]))
    stuck = table_item(stack, *trip)
    assert stuck["imageStatus"] == "generating"
    unfinished = [key for key in queued if table_item(stack, *key)["imageStatus"] != "ready"]
    assert dead_letters(stack) >= len(unfinished) >= 1
    assert audit(stack, queued).orphans != []  # the lost job's image, for now

    clock.advance(seconds=STUCK_AFTER_SECONDS)
    report = handler("sweep").lambda_handler(load_event("sweep-scheduled.json"), LambdaContext())
    run(stack, worker, clock, FaultInjector())

    assert report["stuck"] == len(unfinished)
    assert table_item(stack, *trip)["imageJobId"] == stuck["imageJobId"]
    assert judged(stack, queued).ready == len(queued)


def test_a_write_back_that_always_fails_ends_failed_and_removes_the_image_it_stored(stack, handler, queued, clock):
    injector = FaultInjector([Fault("dynamodb", "UpdateItem", error="InternalServerError", where=WRITE_BACK)])

    run(stack, handler("worker"), clock, injector)

    assert injector.calls[("s3", "PutObject")] == MAX_RECEIVE_COUNT * len(queued)
    assert judged(stack, queued).failed == {"internal_error": len(queued)}


def test_a_write_back_that_took_effect_but_lost_its_answer_is_not_repeated(stack, handler, queued, clock):
    fault = Fault("dynamodb", "UpdateItem", when="after", error="InternalServerError", where=WRITE_BACK, times=2)
    write_backs: Counter = Counter()
    injector = FaultInjector([fault], observers=[count_write_backs(write_backs)])

    run(stack, handler("worker"), clock, injector)

    assert injector.strikes(fault) == 2
    assert judged(stack, queued, write_backs).ready == len(queued)
    assert max(write_backs.values()) == 1


def sets_status(status: str):
    return lambda params: {"S": status} in (params.get("ExpressionAttributeValues") or {}).values()


@pytest.mark.parametrize("write", ["claim", "write-back", "failure"])
def test_a_write_that_landed_but_whose_resent_request_met_its_condition_counts_as_done(
    stack, handler, queued, clock, write
):
    """The SDK re-sends a request whose answer was lost; the re-sent conditional write then fails its
    condition against the state the first one made. The worker must see that the write was its own:
    not skip a job it claimed, not delete the image it just wrote back, not leave the image of a job
    it failed."""
    where = {"claim": sets_status("generating"), "write-back": WRITE_BACK, "failure": sets_status("failed")}[write]
    faults = [Fault("dynamodb", "UpdateItem", when="after", error="ConditionalCheckFailedException", where=where)]
    if write == "failure":
        faults.append(Fault("s3", "PutObject", when="after"))  # stored, then failing on every delivery
    write_backs: Counter = Counter()
    injector = FaultInjector(faults, observers=[count_write_backs(write_backs)])

    run(stack, handler("worker"), clock, injector)

    assert injector.strikes(faults[0]) >= len(queued)
    result = judged(stack, queued, write_backs)
    if write == "failure":
        assert result.failed == {"storage_error": len(queued)}
    else:
        assert result.ready == len(queued)


def test_a_write_back_whose_condition_fails_after_a_takeover_keeps_only_the_new_jobs_image(
    stack, handler, queued, clock
):
    """While the first job generates, the sweep decides it is stuck and queues a second job; the first
    job's write-back then fails its condition and it removes its own image."""
    trip_sk = "TRIP#trip-euro"
    sweep = handler("sweep")
    worker = handler("worker")
    taken_over = threading.Event()

    def sweep_takes_over_first(params: dict) -> bool:
        if WRITE_BACK(params) and params["Key"]["SK"]["S"] == trip_sk and not taken_over.is_set():
            taken_over.set()
            clock.advance(seconds=STUCK_AFTER_SECONDS)
            assert sweep.lambda_handler(load_event("sweep-scheduled.json"), LambdaContext())["stuck"] >= 1
        return False  # no fault: the write-back itself goes ahead, and meets its condition

    write_backs: Counter = Counter()
    injector = FaultInjector([Fault("dynamodb", "UpdateItem", where=sweep_takes_over_first)])
    injector.observers.append(count_write_backs(write_backs))

    run(stack, worker, clock, injector)

    assert taken_over.is_set()
    assert judged(stack, queued, write_backs).ready == len(queued)
    assert write_backs[(f"USER#{ALICE}", trip_sk)] == 1


def test_the_same_message_delivered_twice_at_once_generates_one_image(stack, handler, queued, monkeypatch):
    sqs = boto3.client("sqs", region_name=REGION)
    (message,) = sqs.receive_message(QueueUrl=stack.physical("JobQueue"), AttributeNames=["All"])["Messages"]
    event = sqs_event([message], stack.arns["JobQueue"])
    containers = handler("worker"), handler("worker")  # Lambda runs concurrent invocations in separate ones
    first_is_generating, second_has_answered = threading.Event(), threading.Event()
    draw = LocalImageProvider.generate
    drawn: list = []

    def slow_generate(self, request):
        drawn.append(request)
        first_is_generating.set()
        assert second_has_answered.wait(timeout=30)
        return draw(self, request)

    monkeypatch.setattr(LocalImageProvider, "generate", slow_generate)
    answers: dict[str, dict] = {}
    first = threading.Thread(target=lambda: answers.update(first=containers[0].lambda_handler(event, LambdaContext())))
    first.start()
    assert first_is_generating.wait(timeout=30)
    answers["second"] = containers[1].lambda_handler(event, LambdaContext())
    second_has_answered.set()
    first.join(timeout=30)

    assert answers["first"] == {"batchItemFailures": []}
    assert answers["second"] == {"batchItemFailures": [{"itemIdentifier": message["MessageId"]}]}
    assert len(drawn) == 1
    job_record = next(key for key in queued if table_item(stack, *key)["imageStatus"] == "ready")
    assert table_item(stack, *job_record)["imageKey"].endswith(".png")


def test_a_duplicate_arriving_after_the_idempotency_window_changes_nothing(stack, handler, queued, clock):
    sqs = boto3.client("sqs", region_name=REGION)
    (message,) = sqs.receive_message(QueueUrl=stack.physical("JobQueue"), AttributeNames=["All"])["Messages"]
    event = sqs_event([message], stack.arns["JobQueue"])
    worker = handler("worker")
    assert worker.lambda_handler(event, LambdaContext()) == {"batchItemFailures": []}
    sqs.delete_message(QueueUrl=stack.physical("JobQueue"), ReceiptHandle=message["ReceiptHandle"])
    run(stack, worker, clock, FaultInjector())
    before = audit(stack, queued)

    clock.advance(seconds=2 * 24 * 3600)  # the idempotency record has expired
    assert worker.lambda_handler(event, LambdaContext()) == {"batchItemFailures": []}

    after = judged(stack, queued)
    assert after.summary() == before.summary()
    assert after.ready == len(queued)


@pytest.mark.parametrize("complete_index", [False, True], ids=["full-table scan", "index scan"])
def test_a_sweep_segment_that_fails_holds_back_only_its_own_records_until_the_retry(
    stack, handler, deliver_stream, complete_index
):
    """The other segments' records are queued, the run ends in a function error (Lambda retries a
    scheduled run, and the schedule comes again), and the retry queues the rest: every record once."""
    trips = [trip(f"user-{n:03}", f"t{n:03}", f"Trip {n}", "2026-01-01T00:00:00.000Z", "") for n in range(40)]
    put_items(stack.physical("TravelTable"), trips, region=REGION)
    deliver_stream()
    if complete_index:
        index_existing_records(stack.physical("TravelTable"))
    assert IndexState(stack.physical("TravelTable")).is_complete() is complete_index
    sweep = handler("sweep", SWEEP_SEGMENTS="4")
    fault = Fault("dynamodb", "Scan", error="ProvisionedThroughputExceededException", where=lambda p: p["Segment"] == 1)
    injector = FaultInjector([fault])

    with injector.active(), pytest.raises(SweepIncomplete, match=r"segments \[1\] of 4"):
        sweep.lambda_handler(load_event("sweep-scheduled.json"), LambdaContext())
    held_back = [t["SK"] for t in trips if table_item(stack, t["PK"], t["SK"]).get("imageStatus") != "queued"]
    first = take_messages(stack)
    retry = sweep.lambda_handler(load_event("sweep-scheduled.json"), LambdaContext())
    second = take_messages(stack)

    assert injector.strikes(fault) == 1
    assert 0 < len(held_back) < len(trips)  # segment 1 held some records, the others the rest
    assert sorted(job["sk"] for job in second) == sorted(held_back) and retry["queued"] == len(held_back)
    per_record = Counter(job["sk"] for job in first + second)
    assert set(per_record) == {t["SK"] for t in trips} and max(per_record.values()) == 1
