"""Events for the host app (issue 16, point 5): what the worker tells EventBridge, captured on moto by a rule
on the default bus that forwards to a queue, as a host app would subscribe."""

from __future__ import annotations

import json

import boto3
import pytest

from devtools.lambda_runtime import LambdaContext, drain_queue, http_event, sqs_event
from devtools.seed import ALICE
from image_recovery import aws
from image_recovery.errors import ContentFilteredError
from image_recovery.providers.local import LocalImageProvider
from tests.helpers import REGION, call_api, metric_total, metrics_emitted, table_item

pytestmark = pytest.mark.integration

EURO = (f"USER#{ALICE}", "TRIP#trip-euro")


@pytest.fixture
def api(seeded, handler):
    return handler("api")


@pytest.fixture
def captured(stack):
    """A queue that receives every event of the service on the default bus; returns a reader of them."""
    sqs, events = boto3.client("sqs", region_name=REGION), boto3.client("events", region_name=REGION)
    url = sqs.create_queue(QueueName="host-app-events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="host-app", EventPattern=json.dumps({"source": ["image-recovery"]}))
    events.put_targets(Rule="host-app", Targets=[{"Id": "queue", "Arn": arn}])

    def read() -> list[dict]:
        found = []
        while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
            found += [json.loads(m["Body"]) for m in batch]
            sqs.delete_message_batch(
                QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)]
            )
        return found

    return read


def queue(api, **body) -> str:
    return call_api(api, http_event("api-queue-selected.json", sub=ALICE, body=body))[1]["batchId"]


def drain(stack, worker) -> dict:
    return drain_queue(stack.physical("JobQueue"), stack.arns["JobQueue"], worker, region=REGION)


def by_type(events: list[dict]) -> dict[str, list[dict]]:
    grouped: dict[str, list[dict]] = {}
    for event in events:
        grouped.setdefault(event["detail-type"], []).append(event["detail"])
    return grouped


def test_each_image_and_the_batch_s_end_reach_the_host_app_once(api, handler, stack, captured):
    batch_id = queue(api, tripIds=["trip-euro", "trip-summer"])
    worker = handler("worker")

    assert drain(stack, worker) == {"handled": 2, "failed": 0}

    events = by_type(captured())
    generated = {e["recordId"]: e for e in events["Image Generated"]}
    assert sorted(generated) == ["trip-euro", "trip-summer"]
    euro = generated["trip-euro"]
    assert euro["imageUrl"] == table_item(stack, *EURO)["imageUrl"]
    assert (euro["userId"], euro["recordType"], euro["keys"], euro["batchId"]) == (
        ALICE,
        "trip",
        {"PK": EURO[0], "SK": EURO[1]},
        batch_id,
    )
    assert euro["regenerated"] is False
    assert events["Image Batch Completed"] == [
        {"userId": ALICE, "batchId": batch_id, "total": 2, "succeeded": 2, "failed": 0, "stack": "image-recovery"}
    ]


def test_a_refusal_and_a_regeneration_are_told_as_such(api, handler, stack, captured, monkeypatch):
    worker = handler("worker")
    queue(api, tripIds=["trip-euro"])
    drain(stack, worker)
    captured()

    call_api(
        api, http_event("api-queue-regenerate.json", sub=ALICE, body={"tripIds": ["trip-euro"], "regenerate": True})
    )
    drain(stack, worker)
    (again,) = by_type(captured())["Image Generated"]
    assert again["regenerated"] is True and again["imageUrl"] == table_item(stack, *EURO)["imageUrl"]

    monkeypatch.setattr(LocalImageProvider, "generate", lambda self, r: (_ for _ in ()).throw(ContentFilteredError()))
    refused_batch = queue(api, tripIds=["trip-summer"])
    drain(stack, worker)
    events = by_type(captured())
    assert [(e["recordId"], e["reason"]) for e in events["Image Generation Failed"]] == [
        ("trip-summer", "content_filtered")
    ]
    assert events["Image Batch Completed"][0] | {"stack": None} == {
        "userId": ALICE,
        "batchId": refused_batch,
        "total": 1,
        "succeeded": 0,
        "failed": 1,
        "stack": None,
    }


def test_a_redelivered_job_does_not_complete_its_batch_twice(api, handler, stack, captured):
    queue(api, tripIds=["trip-euro"])
    worker = handler("worker")
    messages = boto3.client("sqs", region_name=REGION).receive_message(
        QueueUrl=stack.physical("JobQueue"), AttributeNames=["All"]
    )["Messages"]
    event = sqs_event(messages, stack.arns["JobQueue"])

    worker.lambda_handler(event, LambdaContext())
    worker.lambda_handler(event, LambdaContext())  # SQS delivers it again

    assert len(by_type(captured())["Image Batch Completed"]) == 1


def test_eventbridge_failing_never_fails_the_job(api, handler, stack, captured, capsys):
    worker = handler("worker")
    queue(api, tripIds=["trip-euro"])
    # the worker's own events client (made once per container) fails every PutEvents
    aws.client("events").meta.events.register(
        "before-call.events.PutEvents", lambda **_: (_ for _ in ()).throw(RuntimeError("EventBridge is down"))
    )
    capsys.readouterr()

    assert drain(stack, worker) == {"handled": 1, "failed": 0}

    assert table_item(stack, *EURO)["imageStatus"] == "ready"
    assert metric_total(metrics_emitted(capsys.readouterr().out), "HostEventsNotSent") == 2  # image and batch
    assert captured() == []


def test_no_bus_no_events(api, handler, stack, captured):
    queue(api, tripIds=["trip-euro"])

    assert drain(stack, handler("worker", EVENT_BUS_NAME="")) == {"handled": 1, "failed": 0}

    assert captured() == []
