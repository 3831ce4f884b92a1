"""The service never creates an item in the travel table (DESIGN §2), whatever races it.

For every path that writes to a record (the API, the sweep, the fan-out task, the stream function and
the worker) the host app deletes the record at the worst moment: after the path read it and just before
its conditional write reaches DynamoDB. The write must then change nothing: the record stays deleted, no
job is left behind for it, and every job that was queued ends counted.
"""

from __future__ import annotations

import threading

import boto3
import pytest

from devtools import aws_hooks
from devtools.faults import updates_attribute
from devtools.lambda_runtime import LambdaContext, SimulatedClock, SqsPoller, http_event, load_event, sqs_event
from devtools.seed import ALICE, put_items, trip
from image_recovery.errors import ContentFilteredError, TransientGenerationError
from image_recovery.providers.local import LocalImageProvider
from tests.helpers import REGION, call_api, queued_jobs, table_item, take_messages

pytestmark = pytest.mark.integration

KEY = (f"USER#{ALICE}", "TRIP#doomed")


class DeleteJustBefore(aws_hooks.Listener):
    """Deletes the record once, just before the first UpdateItem on it that writes `attribute`."""

    def __init__(self, table: str, attribute: str) -> None:
        self._table = table
        self._writes = updates_attribute(attribute)
        self._lock = threading.Lock()
        self.struck = False

    def before_call(self, call: aws_hooks.Call) -> None:
        params = call.params
        if call.operation != "UpdateItem" or params.get("Key") != {"PK": {"S": KEY[0]}, "SK": {"S": KEY[1]}}:
            return None
        with self._lock:
            if self.struck or not self._writes(params):
                return None
            self.struck = True
        boto3.client("dynamodb", region_name=REGION).delete_item(
            TableName=self._table, Key={"PK": {"S": KEY[0]}, "SK": {"S": KEY[1]}}
        )
        return None


@pytest.fixture
def doomed(stack, deliver_stream):
    put_items(stack.physical("TravelTable"), [trip(ALICE, "doomed", "Doomed", "2026-05-01T00:00:00Z")])
    deliver_stream()
    return stack


def strike(stack, attribute: str) -> DeleteJustBefore:
    return DeleteJustBefore(stack.physical("TravelTable"), attribute)


def gone(stack) -> bool:
    return table_item(stack, *KEY) is None


def batches(stack) -> list[dict]:
    rows = boto3.client("dynamodb", region_name=REGION).scan(TableName=stack.physical("BatchTable"))["Items"]
    return [row for row in rows if "#" not in row["batchId"]["S"]]


def assert_every_batch_ended(stack) -> None:
    for row in batches(stack):
        total = int(row.get("total", {"N": "0"})["N"])
        ended = sum(int(row.get(name, {"N": "0"})["N"]) for name in ("succeeded", "failed"))
        assert (int(row.get("generating", {"N": "0"})["N"]), ended) == (0, total), row


@pytest.mark.parametrize("body", [{"tripIds": ["doomed"]}, {"all": True}], ids=["named", "all"])
def test_the_api_queueing_a_record_the_host_just_deleted(doomed, handler, body):
    api = handler("api")
    hook = strike(doomed, "imageJobId")

    with aws_hooks.listening(hook):
        status, answer = call_api(api, http_event("api-queue-selected.json", sub=ALICE, body=body))

    assert hook.struck and status == 202
    assert [(i["outcome"], i["reason"]) for i in answer["items"]] == [("failed", "not_found")]
    assert gone(doomed) and queued_jobs(doomed) == []


def test_the_sweep_queueing_a_record_the_host_just_deleted(doomed, handler):
    hook = strike(doomed, "imageJobId")

    with aws_hooks.listening(hook):
        report = handler("sweep").lambda_handler(load_event("sweep-scheduled.json"), LambdaContext())

    assert hook.struck and (report["queued"], report["failed"]) == (0, 1)
    assert gone(doomed) and queued_jobs(doomed) == []


def test_the_fan_out_task_queueing_a_record_the_host_just_deleted(stack, handler, deliver_stream):
    # more than one request queues: "doomed" comes last (oldest, and last by key), so the fan-out task reaches it
    others = [trip(ALICE, f"a{n:03}", f"Trip {n}", f"2026-06-01T00:00:{n % 60:02}Z") for n in range(120)]
    put_items(stack.physical("TravelTable"), [*others, trip(ALICE, "doomed", "Doomed", "2020-01-01T00:00:00Z")])
    deliver_stream()
    call_api(handler("api"), http_event("api-queue-all.json", sub=ALICE))
    hook = strike(stack, "imageJobId")
    sqs = boto3.client("sqs", region_name=REGION)
    tasks = handler("tasks")

    with aws_hooks.listening(hook):
        message = sqs.receive_message(QueueUrl=stack.physical("TaskQueue"), AttributeNames=["All"])["Messages"]
        assert tasks.lambda_handler(sqs_event(message, stack.arns["TaskQueue"]), LambdaContext()) == {
            "batchItemFailures": []
        }

    assert hook.struck and gone(stack)
    jobs = take_messages(stack)
    assert len(jobs) == 120 and "doomed" not in {j["recordId"] for j in jobs}
    (batch,) = batches(stack)
    assert int(batch["total"]["N"]) == 120  # the doomed record was never counted in


@pytest.mark.parametrize("queue_new_records", ["false", "true"])
def test_the_stream_function_indexing_a_record_the_host_just_deleted(stack, handler, deliver_stream, queue_new_records):
    handler("indexer", QUEUE_NEW_RECORDS=queue_new_records)  # the stream function as configured
    put_items(stack.physical("TravelTable"), [trip(ALICE, "doomed", "Doomed", "2026-05-01T00:00:00Z")])
    hook = strike(stack, "imageMissingOwner")

    with aws_hooks.listening(hook):
        deliver_stream()

    assert hook.struck and gone(stack) and queued_jobs(stack) == []


def _throttle_once(real):
    calls = []

    def generate(self, request):
        calls.append(request)
        if len(calls) == 1:
            raise TransientGenerationError("throttled", "ThrottlingException: slow down")
        return real(self, request)

    return generate


def _refuse(self, request):
    raise ContentFilteredError("ValidationException: This request has been blocked by our content filters.")


@pytest.mark.parametrize(
    ("moment", "attribute", "generate"),
    [
        ("claiming it", "imageStatus", None),  # mark_generating: queued -> generating
        ("writing the image back", "imageUrl", None),  # mark_ready
        ("noting a retry", "imageError", _throttle_once),  # note_retry after a throttled attempt
        ("marking it refused", "imageError", lambda real: _refuse),  # mark_failed after a content refusal
    ],
)
def test_the_worker_writing_to_a_record_the_host_just_deleted(
    doomed, handler, monkeypatch, moment, attribute, generate
):
    call_api(handler("api"), http_event("api-queue-selected.json", sub=ALICE, body={"tripIds": ["doomed"]}))
    if generate is not None:
        monkeypatch.setattr(LocalImageProvider, "generate", generate(LocalImageProvider.generate))
    worker = handler("worker")
    hook = strike(doomed, attribute)
    poller = SqsPoller(doomed.physical("JobQueue"), doomed.arns["JobQueue"], worker, region=REGION, raise_errors=True)

    with aws_hooks.listening(hook), SimulatedClock() as clock:
        poller.drain(clock)  # a retried job comes back once its delay has passed

    assert hook.struck, moment
    assert gone(doomed), f"the worker brought the record back while {moment}"
    bucket = doomed.physical("ImageBucket")
    assert boto3.client("s3", region_name=REGION).list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0
    assert_every_batch_ended(doomed)
