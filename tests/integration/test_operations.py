"""Operations paths end to end on moto: retries with backoff, dead letters, redrive, stuck jobs, metrics."""

from __future__ import annotations

import io
import json
import logging
from datetime import UTC, datetime, timedelta

import boto3
import pytest
import time_machine

from devtools.lambda_runtime import LambdaContext, drain_queue, http_event, load_event, sqs_event
from devtools.ops import copy_messages
from devtools.seed import ALICE, BOB, put_items, trip
from devtools.template_resources import load_template
from image_recovery import aws
from image_recovery.errors import ContentFilteredError, ModelUnavailableError, TransientGenerationError
from image_recovery.observability import logger
from image_recovery.providers.local import LocalImageProvider
from tests.helpers import (
    REGION,
    call_api,
    drained,
    metric_total,
    metrics_emitted,
    queued_jobs,
    table_item,
    take_messages,
)

pytestmark = pytest.mark.integration

TRIP_KEY = (f"USER#{ALICE}", "TRIP#trip-euro")
DRAW = LocalImageProvider.generate


@pytest.fixture
def api(seeded, handler):
    return handler("api")


@pytest.fixture
def sqs():
    return boto3.client("sqs", region_name=REGION)


def queue_trip(api) -> str:
    _, body = call_api(api, http_event("api-queue-selected.json", sub=ALICE, body={"tripIds": ["trip-euro"]}))
    return body["batchId"]


def drain(stack, worker) -> dict:
    return drain_queue(stack.physical("JobQueue"), stack.arns["JobQueue"], worker, region=REGION)


def progress(api, batch_id: str) -> dict:
    _, body = call_api(api, http_event("api-batch-progress.json", sub=ALICE, path_parameters={"batchId": batch_id}))
    return body


def throttle(monkeypatch, failures: int | None) -> list:
    """Make the local renderer throttle `failures` times (None: always), then draw as usual."""
    calls: list = []

    def generate(self, request):
        calls.append(request)
        if failures is None or len(calls) <= failures:
            raise TransientGenerationError("throttled", "ThrottlingException: Too many requests")
        return DRAW(self, request)

    monkeypatch.setattr(LocalImageProvider, "generate", generate)
    return calls


def deliver(stack, sqs, worker) -> tuple[list[dict], dict]:
    """One delivery as Lambda's poller makes it; then time passes: the message is visible again at once."""
    messages = sqs.receive_message(
        QueueUrl=stack.physical("JobQueue"), MaxNumberOfMessages=10, AttributeNames=["All"]
    ).get("Messages", [])
    if not messages:
        return [], {}
    response = worker.lambda_handler(sqs_event(messages, stack.arns["JobQueue"]), LambdaContext())
    failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
    for message in messages:
        if message["MessageId"] in failed:
            sqs.change_message_visibility(
                QueueUrl=stack.physical("JobQueue"), ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
            )
        else:
            sqs.delete_message(QueueUrl=stack.physical("JobQueue"), ReceiptHandle=message["ReceiptHandle"])
    return messages, response


def requested_delays(client) -> list[int]:
    delays: list[int] = []
    client.meta.events.register(
        "provide-client-params.sqs.ChangeMessageVisibility",
        lambda params, **_: delays.append(params["VisibilityTimeout"]),
    )
    return delays


def test_a_throttled_job_is_retried_with_growing_delays_and_later_succeeds(
    api, handler, stack, sqs, monkeypatch, capsys
):
    batch_id = queue_trip(api)
    worker = handler("worker")
    calls = throttle(monkeypatch, failures=2)
    delays = requested_delays(aws.client("sqs"))

    for _ in range(3):
        deliver(stack, sqs, worker)

    record = table_item(stack, *TRIP_KEY)
    assert len(calls) == 3
    assert delays == [30, 60]
    assert (record["imageStatus"], record["imageAttempts"]) == ("ready", 3)
    assert "imageError" not in record
    assert progress(api, batch_id)["succeeded"] == 1
    emitted = metrics_emitted(capsys.readouterr().out)
    assert sum(m.get("GenerationRetried", [0])[0] for m in emitted) == 2
    assert sum(m.get("ImagesGenerated", [0])[0] for m in emitted) == 1


def test_while_retrying_the_record_shows_generating_with_the_last_reason(api, handler, stack, sqs, monkeypatch):
    queue_trip(api)
    worker = handler("worker")
    throttle(monkeypatch, failures=None)

    deliver(stack, sqs, worker)

    _, listing = call_api(api, http_event("api-list-missing-images.json", sub=ALICE))
    euro = next(t for t in listing["trips"] if t["id"] == "trip-euro")
    assert (euro["imageStatus"], euro["imageError"]) == ("generating", "throttled")


def dead_letter(api, handler, stack, sqs, monkeypatch) -> str:
    """Queue the trip and let every allowed delivery be throttled; returns the batch id."""
    batch_id = queue_trip(api)
    worker = handler("worker")
    throttle(monkeypatch, failures=None)
    max_receive = int(stack.function_environment("WorkerFunction")["MAX_RECEIVE_COUNT"])
    for _ in range(max_receive):
        _, response = deliver(stack, sqs, worker)
        assert len(response["batchItemFailures"]) == 1
    # the next receive finds the receive count exhausted: SQS moves the message to the dead-letter queue
    assert deliver(stack, sqs, worker) == ([], {})
    return batch_id


def test_a_job_that_keeps_failing_ends_in_the_dlq_and_its_record_failed(api, handler, stack, sqs, monkeypatch, capsys):
    batch_id = dead_letter(api, handler, stack, sqs, monkeypatch)

    dlq = sqs.receive_message(QueueUrl=stack.physical("JobDeadLetterQueue"), VisibilityTimeout=0)["Messages"]
    assert len(dlq) == 1
    assert json.loads(dlq[0]["Body"])["recordId"] == "trip-euro"
    record = table_item(stack, *TRIP_KEY)
    assert (record["imageStatus"], record["imageError"]) == ("failed", "throttled")
    assert record["imageAttempts"] == 5
    assert progress(api, batch_id) | {"batchId": None} == drained(1, 0, 1)
    emitted = metrics_emitted(capsys.readouterr().out)
    assert any(m.get("GenerationFailures") == [1.0] and m.get("reason") == "throttled" for m in emitted)


def test_redrive_brings_dead_lettered_jobs_back_and_they_finish(api, handler, stack, sqs, monkeypatch):
    batch_id = dead_letter(api, handler, stack, sqs, monkeypatch)
    monkeypatch.setattr(LocalImageProvider, "generate", DRAW)  # the model is healthy again

    report = copy_messages(sqs, stack.physical("JobDeadLetterQueue"), stack.physical("JobQueue"), wait_seconds=0)
    worker = handler("worker")
    deliver(stack, sqs, worker)

    assert report.moved == 1
    record = table_item(stack, *TRIP_KEY)
    assert record["imageStatus"] == "ready"
    assert progress(api, batch_id) | {"batchId": None} == drained(1, 1)


def test_retry_failed_requeues_every_failed_record_of_the_user_and_nothing_else(api, handler, stack, sqs, monkeypatch):
    dead_letter(api, handler, stack, sqs, monkeypatch)
    before = len(queued_jobs(stack))

    status, body = call_api(api, http_event("api-queue-selected.json", sub=ALICE, body={"retryFailed": True}))

    assert status == 202
    assert body["items"] == [{"type": "trip", "id": "trip-euro", "outcome": "queued", "reason": None}]
    assert len(queued_jobs(stack)) == before + 1
    assert table_item(stack, *TRIP_KEY)["imageStatus"] == "queued"


def test_the_sweep_sends_a_lost_job_again_and_its_batch_counts_it_on(api, handler, stack, sqs):
    old_batch = queue_trip(api)
    (lost,) = sqs.receive_message(QueueUrl=stack.physical("JobQueue"))["Messages"]  # the message is lost
    sqs.delete_message(QueueUrl=stack.physical("JobQueue"), ReceiptHandle=lost["ReceiptHandle"])
    boto3.client("dynamodb", region_name=REGION).update_item(
        TableName=stack.physical("TravelTable"),
        Key={"PK": {"S": TRIP_KEY[0]}, "SK": {"S": TRIP_KEY[1]}},
        UpdateExpression="SET imageUpdatedAt = :long_ago",
        ExpressionAttributeValues={":long_ago": {"S": "2026-01-01T00:00:00.000Z"}},
    )

    report = handler("sweep").lambda_handler(load_event("sweep-scheduled.json"), LambdaContext())

    assert report["stuck"] == 1
    record = table_item(stack, *TRIP_KEY)
    assert (record["imageStatus"], record["imageJobId"]) == ("queued", json.loads(lost["Body"])["jobId"])
    lost_job = {k: v for k, v in json.loads(lost["Body"]).items() if k != "correlationId"}  # the record lacks it
    assert [job for job in queued_jobs(stack) if job["recordId"] == "trip-euro"] == [lost_job]
    assert progress(api, old_batch)["queued"] == 1  # still the person's job, still waiting
    worker = handler("worker")
    assert drain(stack, worker)["failed"] == 0
    assert (progress(api, old_batch)["succeeded"], progress(api, old_batch)["failed"]) == (1, 0)
    # the lost message, if it ever turns up as well, does the work only once
    ready = table_item(stack, *TRIP_KEY)
    assert worker.lambda_handler(sqs_event([lost], stack.arns["JobQueue"]), LambdaContext()) == {
        "batchItemFailures": []
    }
    assert table_item(stack, *TRIP_KEY) == ready
    assert (progress(api, old_batch)["succeeded"], progress(api, old_batch)["failed"]) == (1, 0)


def test_a_backlog_longer_than_stuck_job_minutes_is_not_taken_over(api, handler, stack, sqs):
    """Jobs that wait behind other work show no progress for a long time: as long as the queue holds messages,
    the sweep leaves them alone, and the person's batch never reads failed."""
    _, body = call_api(
        api,
        http_event(
            "api-queue-selected.json",
            sub=ALICE,
            body={"tripIds": ["trip-euro", "trip-summer"], "segmentIds": ["seg-paris-rome", "seg-rome-venice"]},
        ),
    )
    batch_id = body["batchId"]
    jobs = {(job["pk"], job["sk"]): job["jobId"] for job in queued_jobs(stack)}
    assert len(jobs) == 4

    with time_machine.travel(datetime.now(UTC) + timedelta(minutes=61)):
        report = handler("sweep").lambda_handler(load_event("sweep-scheduled.json"), LambdaContext())

    assert report["stuck"] == 0
    waiting = [(job["pk"], job["sk"], job["jobId"]) for job in queued_jobs(stack) if (job["pk"], job["sk"]) in jobs]
    assert sorted(waiting) == sorted((*key, job_id) for key, job_id in jobs.items())  # no message added
    for key, job_id in jobs.items():
        assert (table_item(stack, *key)["imageStatus"], table_item(stack, *key)["imageJobId"]) == ("queued", job_id)
    assert progress(api, batch_id) | {"batchId": None} == {
        "batchId": None,
        "total": 4,
        "queued": 4,
        "generating": 0,
        "succeeded": 0,
        "failed": 0,
        "complete": True,
    }
    assert drain(stack, handler("worker"))["failed"] == 0
    assert progress(api, batch_id)["succeeded"] == 4


def test_a_recently_queued_record_is_not_stuck(api, handler, stack):
    queue_trip(api)
    job_id = table_item(stack, *TRIP_KEY)["imageJobId"]

    report = handler("sweep").lambda_handler(load_event("sweep-scheduled.json"), LambdaContext())

    assert report["stuck"] == 0
    assert table_item(stack, *TRIP_KEY)["imageJobId"] == job_id


def fault_rate(emitted: list[dict]) -> float:
    """GenerationFaultRateAlarm's expression (template.yaml) over one window of emitted metrics."""
    faults = metric_total(emitted, "GenerationFaults")
    ended = faults + metric_total(emitted, "ImagesGenerated") + metric_total(emitted, "ImagesRegenerated")
    return 100 * faults / ended if faults >= 3 else 0


def test_a_total_outage_moves_the_fault_rate_alarm_and_refusals_do_not(api, handler, stack, sqs, monkeypatch, capsys):
    """Bedrock denying every call (access revoked, the model ended) fails every job for a reason that is not
    the prompt's: GenerationFaults counts each, ModelUnavailable each delivery. Content refusals count in
    neither, so a user with odd prompts raises no alarm."""
    alarm = load_template()["Resources"]["GenerationFaultRateAlarm"]["Properties"]
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (20, "GreaterThanThreshold")
    call_api(
        api,
        http_event(
            "api-queue-selected.json",
            sub=ALICE,
            body={"tripIds": ["trip-euro", "trip-summer"], "segmentIds": ["seg-paris-rome", "seg-rome-venice"]},
        ),
    )
    worker = handler("worker", MAX_RECEIVE_COUNT="2")
    monkeypatch.setattr(
        LocalImageProvider,
        "generate",
        lambda self, r: (_ for _ in ()).throw(ModelUnavailableError("model_access_denied", "AccessDeniedException")),
    )
    capsys.readouterr()

    for _ in range(2):
        deliver(stack, sqs, worker)

    outage = metrics_emitted(capsys.readouterr().out)
    assert metric_total(outage, "GenerationFaults") == 4
    assert metric_total(outage, "ModelUnavailable") == 8
    assert fault_rate(outage) == 100 > alarm["Threshold"]
    assert len(take_messages(stack)) == 4  # on their way to the dead-letter queue (MaxReceiveCount is 5 in the queue)

    # the same number of jobs refused by the content filter: no fault at all
    put_items(stack.physical("TravelTable"), [trip(BOB, f"t{n}", "Odd", "2026-11-30T10:00:00Z") for n in range(4)])
    call_api(api, http_event("api-queue-selected.json", sub=BOB, body={"tripIds": [f"t{n}" for n in range(4)]}))
    monkeypatch.setattr(
        LocalImageProvider, "generate", lambda self, r: (_ for _ in ()).throw(ContentFilteredError("refused"))
    )
    deliver(stack, sqs, worker)
    refusals = metrics_emitted(capsys.readouterr().out)
    assert metric_total(refusals, "GenerationFailures", reason="content_filtered") == 4
    assert metric_total(refusals, "GenerationFaults") == 0
    assert fault_rate(refusals) == 0


def test_a_stuck_job_of_a_batch_this_stack_never_had_gets_a_new_job(api, handler, stack, sqs):
    """A table kept from an earlier stack (or copied) names batches this stack's BatchTable never held: the
    sweep queues a new job in its own batch rather than counting into a batch row nobody can read."""
    queue_trip(api)
    (lost,) = sqs.receive_message(QueueUrl=stack.physical("JobQueue"))["Messages"]
    sqs.delete_message(QueueUrl=stack.physical("JobQueue"), ReceiptHandle=lost["ReceiptHandle"])
    boto3.client("dynamodb", region_name=REGION).update_item(
        TableName=stack.physical("TravelTable"),
        Key={"PK": {"S": TRIP_KEY[0]}, "SK": {"S": TRIP_KEY[1]}},
        UpdateExpression="SET imageUpdatedAt = :long_ago, imageBatchId = :elsewhere",
        ExpressionAttributeValues={":long_ago": {"S": "2026-01-01T00:00:00.000Z"}, ":elsewhere": {"S": "old-stack-1"}},
    )

    report = handler("sweep").lambda_handler(load_event("sweep-scheduled.json"), LambdaContext())

    record = table_item(stack, *TRIP_KEY)
    assert report["stuck"] == 1
    assert record["imageJobId"] != json.loads(lost["Body"])["jobId"]
    assert record["imageBatchId"] == report["batch_id"]
    batches = boto3.client("dynamodb", region_name=REGION).scan(TableName=stack.physical("BatchTable"))["Items"]
    assert {item["batchId"]["S"] for item in batches} >= {report["batch_id"]}
    assert "old-stack-1" not in {item["batchId"]["S"] for item in batches}


def test_a_task_that_fails_is_reported_alone_and_logged_with_its_message_id(handler, stack, caplog):
    """The task dead-letter queue's runbook starts from the log line a failed task leaves."""
    event = load_event("tasks-sqs.json")
    good = event["Records"][0]
    broken = {**good, "messageId": "broken-task-1", "body": json.dumps({"kind": "no-such-task"})}

    response = handler("tasks").lambda_handler({"Records": [broken]}, LambdaContext())

    assert response == {"batchItemFailures": [{"itemIdentifier": "broken-task-1"}]}
    (failure,) = [r for r in caplog.records if getattr(r, "record", None) == "broken-task-1"]
    assert failure.levelname == "WARNING" and "no-such-task" in failure.error


def test_one_record_can_be_followed_from_the_request_to_the_write_back_in_the_logs(api, handler, stack):
    """What docs/operations.md's query does in CloudWatch Logs Insights: one record id (or the request's
    correlation id) finds the API's line for its job and every worker line about it."""
    written = io.StringIO()
    log_lines = logging.StreamHandler(written)
    log_lines.setFormatter(logger.registered_formatter)  # the JSON lines CloudWatch receives
    logger.addHandler(log_lines)
    try:
        request = http_event("api-queue-selected.json", sub=ALICE, body={"tripIds": ["trip-euro", "trip-summer"]})
        call_api(api, request)
        drain(stack, handler("worker"))
    finally:
        logger.removeHandler(log_lines)

    lines = [json.loads(line) for line in written.getvalue().splitlines()]
    about = [line for line in lines if line.get("record_id") == "trip-euro"]
    (queued,) = [line for line in about if line["message"] == "job queued"]
    assert queued["correlation_id"] == request["requestContext"]["requestId"]
    worker_lines = [line for line in about if line is not queued]
    assert [line["message"] for line in worker_lines] == ["image stored"]
    assert {(line["job_id"], line["record_type"], line["correlation_id"]) for line in worker_lines} == {
        (queued["job_id"], "trip", queued["correlation_id"])
    }
