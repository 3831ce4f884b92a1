"""Regenerating on request (issue 15, DESIGN §3), through the real handlers.

A record that has an image is queued again only when a request names it with `regenerate: true`. Its image
stays in place until the new one is stored; the new one replaces it only if the record still shows it; the
replaced object goes if it is the service's own. A refusal, a failure or another writer's image leaves the
record with an image at every moment.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3
import pytest
import time_machine
from botocore.stub import Stubber

from devtools.lambda_runtime import LambdaContext, drain_queue, http_event, load_event, sqs_event
from devtools.seed import ALICE, BOB, put_items, trip
from image_recovery import aws
from image_recovery.errors import TransientGenerationError
from image_recovery.providers.local import LocalImageProvider
from tests.helpers import REGION, call_api, drained, metric_total, metrics_emitted, table_item, take_messages

pytestmark = pytest.mark.integration

TRIP_KEY = (f"USER#{ALICE}", "TRIP#trip-euro")
HOST_URL = "https://cdn.example.com/host/cover.png"


@pytest.fixture
def api(seeded, handler):
    return handler("api")


@pytest.fixture
def worker(handler):
    return handler("worker")


def regenerate(api, user: str = ALICE, **body) -> tuple[int, dict]:
    body = body or {"tripIds": ["trip-euro"]}
    return call_api(api, http_event("api-queue-regenerate.json", sub=user, body={"regenerate": True, **body}))


def progress(api, batch_id: str) -> dict:
    _, body = call_api(api, http_event("api-batch-progress.json", sub=ALICE, path_parameters={"batchId": batch_id}))
    return body


def drain(stack, worker) -> dict:
    return drain_queue(stack.physical("JobQueue"), stack.arns["JobQueue"], worker, region=REGION)


def objects(stack) -> list[str]:
    listing = boto3.client("s3", region_name=REGION).list_objects_v2(Bucket=stack.physical("ImageBucket"))
    return sorted(o["Key"] for o in listing.get("Contents", []))


def listed_ids(api) -> set[str]:
    _, page = call_api(api, http_event("api-list-missing-images.json", sub=ALICE))
    return {item["id"] for group in ("trips", "segments", "reservations") for item in page[group]}


def set_image(stack, url: str, key: tuple[str, str] = TRIP_KEY) -> None:
    boto3.client("dynamodb", region_name=REGION).update_item(
        TableName=stack.physical("TravelTable"),
        Key={"PK": {"S": key[0]}, "SK": {"S": key[1]}},
        UpdateExpression="SET imageUrl = :u",
        ExpressionAttributeValues={":u": {"S": url}},
    )


@pytest.fixture
def generated(api, worker, stack) -> dict:
    """trip-euro with an image of the service's own, generated the ordinary way (it was missing)."""
    call_api(api, http_event("api-queue-selected.json", sub=ALICE, body={"tripIds": ["trip-euro"]}))
    assert drain(stack, worker) == {"handled": 1, "failed": 0}
    record = table_item(stack, *TRIP_KEY)
    assert record["imageStatus"] == "ready"
    assert objects(stack) == [record["imageKey"]]
    return record


def test_without_regenerate_a_record_with_an_image_is_skipped_as_before(api, generated, stack):
    _, body = call_api(api, http_event("api-queue-selected.json", sub=ALICE, body={"tripIds": ["trip-euro"]}))

    assert body["items"] == [{"type": "trip", "id": "trip-euro", "outcome": "skipped", "reason": "has_image"}]
    assert table_item(stack, *TRIP_KEY) == generated


def test_a_regeneration_replaces_the_image_and_deletes_the_replaced_object(api, worker, generated, stack, capsys):
    missing_before = listed_ids(api)
    status, body = regenerate(api, tripIds=["trip-euro"], styleId="watercolor")

    assert status == 202
    assert body["items"] == [{"type": "trip", "id": "trip-euro", "outcome": "queued", "reason": None}]
    queued = table_item(stack, *TRIP_KEY)
    # the image stays while the job waits, and the record is not listed as missing
    assert (queued["imageStatus"], queued["imageUrl"], queued["imageReplaces"]) == (
        "queued",
        generated["imageUrl"],
        generated["imageUrl"],
    )
    assert "imageMissingOwner" not in queued
    assert listed_ids(api) == missing_before
    capsys.readouterr()

    assert drain(stack, worker) == {"handled": 1, "failed": 0}

    record = table_item(stack, *TRIP_KEY)
    assert record["imageStatus"] == "ready"
    assert record["imageUrl"] != generated["imageUrl"]
    assert record["imageKey"] != generated["imageKey"]
    assert record["imageStyleId"] == "watercolor"
    assert "imageReplaces" not in record
    assert objects(stack) == [record["imageKey"]]  # the replaced object is gone
    assert progress(api, body["batchId"]) | {"batchId": None} == drained(1, 1)
    emitted = metrics_emitted(capsys.readouterr().out)
    assert metric_total(emitted, "ImagesRegenerated") == 1
    assert metric_total(emitted, "ImagesGenerated") == 0
    assert listed_ids(api) == missing_before


def test_a_regeneration_already_in_flight_is_not_queued_twice(api, generated, stack):
    regenerate(api)
    _, again = regenerate(api)

    assert again["items"] == [{"type": "trip", "id": "trip-euro", "outcome": "skipped", "reason": "already_queued"}]
    assert len(take_messages(stack)) == 1


def test_a_refused_regeneration_keeps_the_old_image_with_the_reason(api, handler, generated, stack):
    worker = handler("worker", IMAGE_PROVIDER="bedrock", BEDROCK_MODEL_ID="stability.stable-image-core-v1:1")
    _, body = regenerate(api)
    with Stubber(aws.client("bedrock-runtime")) as stubber:
        stubber.add_client_error(
            "invoke_model",
            service_error_code="ValidationException",
            service_message="This request has been blocked by our content filters. "
            "Please adjust your text prompt to submit a new request.",
            http_status_code=400,
        )
        assert drain(stack, worker) == {"handled": 1, "failed": 0}
        stubber.assert_no_pending_responses()

    record = table_item(stack, *TRIP_KEY)
    assert (record["imageStatus"], record["imageError"]) == ("failed", "content_filtered")
    assert (record["imageUrl"], record["imageKey"]) == (generated["imageUrl"], generated["imageKey"])
    assert objects(stack) == [generated["imageKey"]]
    assert progress(api, body["batchId"])["failed"] == 1
    assert "trip-euro" not in listed_ids(api)  # it has an image: not missing, whatever its job did

    # a person may ask again; the image is still the one replaced
    _, again = regenerate(api)
    assert again["items"][0]["outcome"] == "queued"


def test_a_retried_delivery_keeps_the_current_image_until_the_new_one_is_written(
    api, worker, generated, stack, monkeypatch
):
    """The second delivery removes what earlier deliveries of its job stored; never the record's current image."""
    regenerate(api)
    real_generate = LocalImageProvider.generate
    seen = []

    def throttled_once(self, request):
        seen.append((objects(stack), table_item(stack, *TRIP_KEY)["imageUrl"]))
        if len(seen) == 1:
            raise TransientGenerationError("throttled", "ThrottlingException: slow down")
        return real_generate(self, request)

    monkeypatch.setattr(LocalImageProvider, "generate", throttled_once)
    messages = take_messages_raw(stack)
    event = sqs_event(messages, stack.arns["JobQueue"])
    assert worker.lambda_handler(event, LambdaContext())["batchItemFailures"]
    for message in event["Records"]:
        message["attributes"]["ApproximateReceiveCount"] = "2"
    with time_machine.travel(datetime.now(UTC) + timedelta(minutes=5)):
        assert worker.lambda_handler(event, LambdaContext()) == {"batchItemFailures": []}

    assert seen[1] == ([generated["imageKey"]], generated["imageUrl"])
    record = table_item(stack, *TRIP_KEY)
    assert record["imageStatus"] == "ready"
    assert objects(stack) == [record["imageKey"]]


def take_messages_raw(stack) -> list[dict]:
    return boto3.client("sqs", region_name=REGION).receive_message(
        QueueUrl=stack.physical("JobQueue"), MaxNumberOfMessages=10, AttributeNames=["All"]
    )["Messages"]


def test_a_redelivered_regeneration_that_already_succeeded_does_no_work_twice(
    api, worker, generated, stack, monkeypatch
):
    regenerate(api)
    calls = []
    real_generate = LocalImageProvider.generate
    monkeypatch.setattr(LocalImageProvider, "generate", lambda self, r: calls.append(r) or real_generate(self, r))
    event = sqs_event(take_messages_raw(stack), stack.arns["JobQueue"])

    worker.lambda_handler(event, LambdaContext())
    replaced = table_item(stack, *TRIP_KEY)
    again = worker.lambda_handler(event, LambdaContext())

    assert again == {"batchItemFailures": []}
    assert len(calls) == 1
    assert table_item(stack, *TRIP_KEY) == replaced
    assert objects(stack) == [replaced["imageKey"]]


def test_another_writers_image_set_meanwhile_wins(api, worker, generated, stack, monkeypatch):
    _, body = regenerate(api)
    real_generate = LocalImageProvider.generate

    def host_writes_first(self, request):
        set_image(stack, HOST_URL)
        return real_generate(self, request)

    monkeypatch.setattr(LocalImageProvider, "generate", host_writes_first)

    assert drain(stack, worker) == {"handled": 1, "failed": 0}
    record = table_item(stack, *TRIP_KEY)
    assert record["imageUrl"] == HOST_URL
    assert record["imageStatus"] == "ready"
    assert "imageReplaces" not in record
    # ours was never written back and is removed; the one the host replaced is its business (the stream's
    # cleaner or the bucket audit removes an image no record points at)
    assert all(key == generated["imageKey"] for key in objects(stack))
    assert progress(api, body["batchId"])["succeeded"] == 1


def test_a_host_image_is_replaced_but_never_deleted(api, worker, stack):
    """Only the service's own objects are deleted: a host URL, or one of ours naming another record's object
    (a copied item), is replaced on the record and its object left alone."""
    set_image(stack, HOST_URL)
    regenerate(api)
    assert drain(stack, worker) == {"handled": 1, "failed": 0}
    record = table_item(stack, *TRIP_KEY)
    assert record["imageUrl"] != HOST_URL and record["imageStatus"] == "ready"
    assert objects(stack) == [record["imageKey"]]

    # a segment whose imageUrl is a copy of the trip's (our base, the trip's object)
    segment_key = (f"USER#{ALICE}", "TRIP#trip-euro#SEGMENT#seg-paris-rome")
    set_image(stack, record["imageUrl"], segment_key)
    _, body = regenerate(api, tripIds=[], segmentIds=["seg-paris-rome"])
    assert body["items"][0]["outcome"] == "queued"
    assert drain(stack, worker) == {"handled": 1, "failed": 0}

    segment = table_item(stack, *segment_key)
    assert segment["imageUrl"] != record["imageUrl"]
    assert sorted(objects(stack)) == sorted([record["imageKey"], segment["imageKey"]])


def test_a_user_cannot_regenerate_another_users_record(api, generated, stack, world):
    before = world()
    _, body = regenerate(api, user=BOB)

    assert body["items"] == [{"type": "trip", "id": "trip-euro", "outcome": "failed", "reason": "not_found"}]
    assert body["summary"]["trips"] == {"queued": 0, "skipped": 0, "failed": 1}
    after = world()
    # only the (empty) batch of the request itself is new
    assert after["tables"]["TravelTable"] == before["tables"]["TravelTable"]
    assert after["messages"] == before["messages"]


@pytest.mark.parametrize(
    "body",
    [
        {"all": True, "regenerate": True},
        {"retryFailed": True, "regenerate": True},
        {"tripIds": ["trip-euro"], "regenerate": "yes"},
        {"tripIds": ["trip-euro"], "regenerate": 1},
    ],
    ids=["with all", "with retryFailed", "a string", "a number"],
)
def test_regenerate_is_for_named_records_only_and_a_json_boolean(api, generated, world, body):
    before = world()
    status, answer = call_api(api, http_event("api-queue-regenerate.json", sub=ALICE, body=body))

    assert status == 400
    assert answer["error"]["code"] == "invalid_request"
    assert world() == before


def test_a_regeneration_whose_message_was_lost_is_taken_over_after_stuck_job_minutes(api, worker, generated, stack):
    _, first = regenerate(api)
    take_messages(stack)  # the message is lost

    with time_machine.travel(datetime.now(UTC) + timedelta(minutes=30)):
        _, early = regenerate(api)
    assert early["items"][0]["reason"] == "already_queued"

    with time_machine.travel(datetime.now(UTC) + timedelta(minutes=61)):
        _, later = regenerate(api)
        assert later["items"][0]["outcome"] == "queued"
        assert table_item(stack, *TRIP_KEY)["imageUrl"] == generated["imageUrl"]  # never without an image
        assert drain(stack, worker) == {"handled": 1, "failed": 0}

    record = table_item(stack, *TRIP_KEY)
    assert record["imageStatus"] == "ready" and record["imageUrl"] != generated["imageUrl"]
    assert objects(stack) == [record["imageKey"]]
    assert progress(api, first["batchId"]) | {"batchId": None} == drained(1, 0, 1)
    assert progress(api, later["batchId"])["succeeded"] == 1


def test_the_sweep_never_regenerates(api, handler, generated, stack):
    regenerate(api)
    take_messages(stack)
    sweep = handler("sweep")
    with time_machine.travel(datetime.now(UTC) + timedelta(hours=3)):
        sweep.lambda_handler(load_event("sweep-scheduled.json"), LambdaContext())

    queued_keys = [(job["pk"], job["sk"]) for job in take_messages(stack)]
    assert queued_keys  # the sweep ran and queued the records that are missing their images
    assert TRIP_KEY not in queued_keys
    assert table_item(stack, *TRIP_KEY)["imageUrl"] == generated["imageUrl"]


def test_regenerating_a_record_without_an_image_queues_it_as_missing(api, worker, stack):
    put_items(stack.physical("TravelTable"), [trip(ALICE, "trip-new", "New trip", "2026-11-30T10:00:00Z")])
    _, body = regenerate(api, tripIds=["trip-new"])

    assert body["items"][0]["outcome"] == "queued"
    record = table_item(stack, f"USER#{ALICE}", "TRIP#trip-new")
    assert "imageReplaces" not in record and record["imageMissingOwner"] == f"USER#{ALICE}"
    assert drain(stack, worker) == {"handled": 1, "failed": 0}
    assert table_item(stack, f"USER#{ALICE}", "TRIP#trip-new")["imageStatus"] == "ready"


def test_a_person_asking_again_after_stuck_job_minutes_takes_over_even_with_the_message_still_queued(
    api, worker, generated, stack
):
    """Unlike the sweep, a request does not wait for the queue to empty: the person asked again. The earlier
    message, when it comes, finds another job on the record and does nothing; the record keeps its image."""
    regenerate(api)
    first_job = table_item(stack, *TRIP_KEY)["imageJobId"]

    with time_machine.travel(datetime.now(UTC) + timedelta(minutes=61)):
        _, again = regenerate(api)
        assert again["items"][0]["outcome"] == "queued"
        assert table_item(stack, *TRIP_KEY)["imageUrl"] == generated["imageUrl"]
        assert drain(stack, worker) == {"handled": 2, "failed": 0}

    record = table_item(stack, *TRIP_KEY)
    assert record["imageJobId"] != first_job and record["imageStatus"] == "ready"
    assert objects(stack) == [record["imageKey"]]
