"""The worker through the real handler: SQS events as Lambda delivers them, moto resources from template.yaml."""

from __future__ import annotations

import base64
import io
import json
from urllib.parse import unquote, urlsplit

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber
from PIL import Image

from devtools.lambda_runtime import LambdaContext, drain_queue, http_event, load_event, sqs_event
from devtools.seed import ALICE, put_items, trip
from image_recovery import aws
from image_recovery.errors import TransientGenerationError
from image_recovery.providers.local import LocalImageProvider
from tests.helpers import REGION, call_api, metric_total, metrics_emitted, table_item

pytestmark = pytest.mark.integration

TRIP_KEY = (f"USER#{ALICE}", "TRIP#trip-euro")


@pytest.fixture
def api(seeded, handler):
    return handler("api")


def queue(api, **ids) -> str:
    _, body = call_api(api, http_event("api-queue-selected.json", sub=ALICE, body=ids or {"tripIds": ["trip-euro"]}))
    return body["batchId"]


def progress(api, batch_id: str) -> dict:
    _, body = call_api(api, http_event("api-batch-progress.json", sub=ALICE, path_parameters={"batchId": batch_id}))
    return body


def receive(stack) -> list[dict]:
    sqs = boto3.client("sqs", region_name=REGION)
    return sqs.receive_message(QueueUrl=stack.physical("JobQueue"), MaxNumberOfMessages=10, AttributeNames=["All"])[
        "Messages"
    ]


def objects(stack) -> list[str]:
    listing = boto3.client("s3", region_name=REGION).list_objects_v2(Bucket=stack.physical("ImageBucket"))
    return [o["Key"] for o in listing.get("Contents", [])]


def drain(stack, worker) -> dict:
    return drain_queue(stack.physical("JobQueue"), stack.arns["JobQueue"], worker, region=REGION)


def image_url_base(stack) -> str:
    """Where the template points imageUrl by default: the CloudFront distribution that serves images/*."""
    return "https://" + stack.resolve({"Fn::GetAtt": ["PanelDistribution", "DomainName"]})


def test_a_job_ends_with_the_image_in_s3_and_its_url_on_the_record(api, handler, stack):
    batch_id = queue(api, tripIds=["trip-euro"], segmentIds=["seg-paris-rome"], reservationIds=["res-eiffel"])
    worker = handler("worker")

    assert drain(stack, worker) == {"handled": 3, "failed": 0}

    record = table_item(stack, *TRIP_KEY)
    bucket = stack.physical("ImageBucket")
    assert record["imageStatus"] == "ready"
    assert record["imageKey"].startswith(f"images/{ALICE}/trip/trip-euro/")
    assert record["imageUrl"] == f"{image_url_base(stack)}/{record['imageKey']}"
    png = boto3.client("s3", region_name=REGION).get_object(Bucket=bucket, Key=record["imageKey"])["Body"].read()
    assert Image.open(io.BytesIO(png)).size == (1280, 720)
    assert sorted(objects(stack)) == sorted(
        table_item(stack, f"USER#{ALICE}", sk)["imageKey"]
        for sk in (
            "TRIP#trip-euro",
            "TRIP#trip-euro#SEGMENT#seg-paris-rome",
            "TRIP#trip-euro#SEGMENT#seg-paris-rome#RESERVATION#res-eiffel",
        )
    )
    assert progress(api, batch_id) == {
        "batchId": batch_id,
        "total": 3,
        "queued": 0,
        "generating": 0,
        "succeeded": 3,
        "failed": 0,
        "complete": True,
    }
    _, listing = call_api(api, http_event("api-list-missing-images.json", sub=ALICE))
    assert listing["count"] == 2


@pytest.mark.parametrize("sub", ["auth0|64a1b2", "google-oauth2:1234", "josé", "50% off? a&b=c+d", "%2F"], ids=repr)
def test_the_image_urls_path_percent_decoded_is_the_stored_objects_key(stack, handler, sub):
    """DESIGN §4: a sub may hold any character; the URL must still load the object it names."""
    put_items(stack.physical("TravelTable"), [trip(sub, "t1", "Lisbon", "2026-01-01T00:00:00.000Z")])
    status, body = call_api(handler("api"), http_event("api-queue-selected.json", sub=sub, body={"tripIds": ["t1"]}))
    assert (status, body["summary"]["trips"]["queued"]) == (202, 1)

    assert drain(stack, handler("worker")) == {"handled": 1, "failed": 0}

    record = table_item(stack, f"USER#{sub}", "TRIP#t1")
    url = urlsplit(record["imageUrl"])
    assert f"{url.scheme}://{url.netloc}" == image_url_base(stack)
    assert (url.query, url.fragment) == ("", "")
    assert all(c.isascii() and (c.isalnum() or c in "-._~/%") for c in url.path)  # sent by any client as it is
    assert unquote(url.path.removeprefix("/")) == record["imageKey"]
    assert record["imageKey"] in objects(stack)


def test_the_sample_worker_event_runs_as_sam_local_invoke_would(seeded, handler, stack):
    job = json.loads(load_event("worker-sqs.json")["Records"][0]["body"])
    from image_recovery.models import TravelRecord, bind
    from image_recovery.repository import RecordRepository

    bind(travel_table=stack.physical("TravelTable"), batch_table=stack.physical("BatchTable"), region=REGION)
    record = TravelRecord.get(job["pk"], job["sk"])
    assert RecordRepository().mark_queued(record, job_id=job["jobId"], batch_id=job["batchId"], style_id=job["styleId"])
    worker = handler("worker")

    response = worker.lambda_handler(load_event("worker-sqs.json"), LambdaContext())

    assert response == {"batchItemFailures": []}
    assert table_item(stack, job["pk"], job["sk"])["imageStatus"] == "ready"


def test_a_transient_failure_is_retried_and_later_succeeds(api, handler, stack, monkeypatch):
    batch_id = queue(api)
    worker = handler("worker")
    real_generate = LocalImageProvider.generate
    calls = []

    def throttled_once(self, request):
        calls.append(request)
        if len(calls) == 1:
            raise TransientGenerationError("throttled", "ThrottlingException: slow down")
        return real_generate(self, request)

    monkeypatch.setattr(LocalImageProvider, "generate", throttled_once)
    messages = receive(stack)

    first = worker.lambda_handler(sqs_event(messages, stack.arns["JobQueue"]), LambdaContext())

    assert first == {"batchItemFailures": [{"itemIdentifier": messages[0]["MessageId"]}]}
    record = table_item(stack, *TRIP_KEY)
    assert (record["imageStatus"], record["imageAttempts"]) == ("generating", 1)
    assert progress(api, batch_id)["generating"] == 1

    # SQS redelivers the same message after its visibility timeout
    second = worker.lambda_handler(sqs_event(messages, stack.arns["JobQueue"]), LambdaContext())

    assert second == {"batchItemFailures": []}
    assert table_item(stack, *TRIP_KEY)["imageStatus"] == "ready"
    assert len(calls) == 2
    assert progress(api, batch_id)["succeeded"] == 1
    assert progress(api, batch_id)["generating"] == 0


def test_a_redelivered_job_that_already_succeeded_does_no_work_twice(api, handler, stack, monkeypatch):
    queue(api)
    worker = handler("worker")
    calls = []
    real_generate = LocalImageProvider.generate
    monkeypatch.setattr(LocalImageProvider, "generate", lambda self, r: calls.append(r) or real_generate(self, r))
    event = sqs_event(receive(stack), stack.arns["JobQueue"])

    worker.lambda_handler(event, LambdaContext())
    url = table_item(stack, *TRIP_KEY)["imageUrl"]
    again = worker.lambda_handler(event, LambdaContext())

    assert again == {"batchItemFailures": []}
    assert len(calls) == 1
    assert table_item(stack, *TRIP_KEY)["imageUrl"] == url
    assert len(objects(stack)) == 1


def test_an_image_set_meanwhile_by_another_writer_is_kept_and_ours_removed(api, handler, stack, monkeypatch):
    queue(api)
    worker = handler("worker")
    theirs = "https://cdn.example.com/their-own.png"
    real_generate = LocalImageProvider.generate

    def other_writer_wins(self, request):
        boto3.client("dynamodb", region_name=REGION).update_item(
            TableName=stack.physical("TravelTable"),
            Key={"PK": {"S": TRIP_KEY[0]}, "SK": {"S": TRIP_KEY[1]}},
            UpdateExpression="SET imageUrl = :u",
            ExpressionAttributeValues={":u": {"S": theirs}},
        )
        return real_generate(self, request)

    monkeypatch.setattr(LocalImageProvider, "generate", other_writer_wins)

    assert drain(stack, worker) == {"handled": 1, "failed": 0}
    assert table_item(stack, *TRIP_KEY)["imageUrl"] == theirs
    assert objects(stack) == []


def test_a_message_that_is_not_a_job_fails_alone_and_says_so_in_the_log(api, handler, stack, caplog):
    queue(api)
    worker = handler("worker")
    messages = receive(stack)
    poison = {**messages[0], "MessageId": "poison-1", "Body": '{"version": 99}', "MD5OfBody": "x"}

    response = worker.lambda_handler(sqs_event([poison, *messages], stack.arns["JobQueue"]), LambdaContext())

    assert response == {"batchItemFailures": [{"itemIdentifier": "poison-1"}]}
    assert table_item(stack, *TRIP_KEY)["imageStatus"] == "ready"
    (failure,) = [r for r in caplog.records if getattr(r, "record", None) == "poison-1"]
    assert failure.levelname == "WARNING" and failure.error.startswith("ValueError: ImageJob")


def test_when_time_runs_short_the_rest_of_the_batch_goes_back_at_once_untouched(api, handler, stack, monkeypatch):
    # Given three queued jobs, one of them on its last allowed delivery, and a model that takes 70 s an image
    batch_id = queue(api, tripIds=["trip-euro", "trip-summer"], segmentIds=["seg-paris-rome"])
    worker = handler("worker")
    messages = receive(stack)
    event = sqs_event(messages, stack.arns["JobQueue"])
    last_chance = event["Records"][2]
    last_chance["attributes"]["ApproximateReceiveCount"] = "5"  # MaxReceiveCount: the DLQ is next
    context = LambdaContext(remaining_ms=180_000)
    real_generate = LocalImageProvider.generate

    def slow(self, request):
        context.remaining_ms -= 70_000
        return real_generate(self, request)

    monkeypatch.setattr(LocalImageProvider, "generate", slow)

    # When one invocation gets all three (180 s; a job may need aws.JOB_BUDGET_SECONDS)
    response = worker.lambda_handler(event, context)

    # Then the job on its last delivery ran first; the two that no longer fit went back as new messages (their
    # delivered ones acknowledged, so SQS's receive count, which dead-letters, does not move), records untouched
    assert response == {"batchItemFailures": []}
    done = json.loads(last_chance["body"])
    assert table_item(stack, done["pk"], done["sk"])["imageStatus"] == "ready"
    handed_back = [json.loads(record["body"]) for record in event["Records"] if record is not last_chance]
    for job in handed_back:
        item = table_item(stack, job["pk"], job["sk"])
        assert (item["imageStatus"], item.get("imageAttempts"), item.get("imageError")) == ("queued", None, None)
    assert progress(api, batch_id) | {"batchId": None} == {
        "batchId": None,
        "total": 3,
        "queued": 2,
        "generating": 0,
        "succeeded": 1,
        "failed": 0,
        "complete": True,
    }
    # and they are on the queue again at once, not after a retry delay, as the same jobs with no attempt spent
    # (the originals were received once; the queue's own delivery of the batch is left to delete by hand)
    again = [m for m in receive(stack) if json.loads(m["Body"]).get("deferrals") == 1]
    assert sorted(json.loads(m["Body"])["jobId"] for m in again) == sorted(job["jobId"] for job in handed_back)
    assert all("earlierAttempts" not in json.loads(m["Body"]) for m in again)  # none spent before
    assert all(m["Attributes"]["ApproximateReceiveCount"] == "1" for m in again)


# ---------------------------------------------------------------- the Bedrock provider, stubbed
PNG = base64.b64encode(
    (lambda buffer: (Image.new("RGB", (8, 8), "teal").save(buffer, "PNG"), buffer.getvalue())[1])(io.BytesIO())
).decode()


def bedrock_body(payload: dict) -> StreamingBody:
    raw = json.dumps(payload).encode()
    return StreamingBody(io.BytesIO(raw), len(raw))


@pytest.fixture
def bedrock_worker(handler):
    worker = handler("worker", IMAGE_PROVIDER="bedrock", BEDROCK_MODEL_ID="stability.stable-image-core-v1:1")
    with Stubber(aws.client("bedrock-runtime")) as stubber:
        yield worker, stubber


def test_bedrock_success_with_the_stability_request_body(api, bedrock_worker, stack):
    worker, stubber = bedrock_worker
    queue(api)
    stubber.add_response(
        "invoke_model",
        {
            "body": bedrock_body({"seeds": [7], "finish_reasons": [None], "images": [PNG]}),
            "contentType": "application/json",
        },
    )

    assert drain(stack, worker) == {"handled": 1, "failed": 0}
    stubber.assert_no_pending_responses()
    record = table_item(stack, *TRIP_KEY)
    assert record["imageStatus"] == "ready"
    stored = boto3.client("s3", region_name=REGION).get_object(
        Bucket=stack.physical("ImageBucket"), Key=record["imageKey"]
    )
    assert base64.b64encode(stored["Body"].read()).decode() == PNG


@pytest.mark.parametrize(
    "stub",
    [
        lambda s: s.add_response(
            "invoke_model",
            {
                "body": bedrock_body({"seeds": [1], "finish_reasons": ["Filter reason: prompt"], "images": [PNG]}),
                "contentType": "application/json",
            },
        ),
        lambda s: s.add_client_error(
            "invoke_model",
            service_error_code="ValidationException",
            # as Bedrock words it: https://docs.aws.amazon.com/nova/latest/userguide/image-gen-errors.html
            service_message="This request has been blocked by our content filters. "
            "Please adjust your text prompt to submit a new request.",
            http_status_code=400,
        ),
    ],
    ids=["filtered inside a successful response", "refused as ValidationException"],
)
def test_a_content_rejection_marks_the_record_failed_and_is_not_retried(api, bedrock_worker, stack, stub, capsys):
    worker, stubber = bedrock_worker
    batch_id = queue(api)
    stub(stubber)
    capsys.readouterr()

    assert drain(stack, worker) == {"handled": 1, "failed": 0}
    emitted = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert any(m.get("GenerationFailures") == [1.0] and m.get("reason") == "content_filtered" for m in emitted)
    record = table_item(stack, *TRIP_KEY)
    assert (record["imageStatus"], record["imageError"]) == ("failed", "content_filtered")
    assert "imageUrl" not in record
    assert objects(stack) == []
    assert progress(api, batch_id)["failed"] == 1
    _, listing = call_api(api, http_event("api-list-missing-images.json", sub=ALICE))
    euro = next(t for t in listing["trips"] if t["id"] == "trip-euro")
    assert (euro["imageStatus"], euro["imageError"]) == ("failed", "content_filtered")


def test_bedrock_throttling_leaves_the_message_for_a_retry(api, bedrock_worker, stack):
    worker, stubber = bedrock_worker
    queue(api)
    for _ in range(2):  # the client's own retry sees the second one
        stubber.add_client_error("invoke_model", service_error_code="ThrottlingException", http_status_code=429)

    assert drain(stack, worker) == {"handled": 0, "failed": 1}
    assert table_item(stack, *TRIP_KEY)["imageStatus"] == "generating"


def test_a_model_that_has_ended_falls_back_and_still_tells_the_operator(api, handler, stack, capsys):
    """Nova Canvas ended: the job is drawn with FallbackModelId, and ModelUnavailable still moves its alarm."""
    worker = handler(
        "worker",
        IMAGE_PROVIDER="bedrock",
        BEDROCK_MODEL_ID="amazon.nova-canvas-v1:0",
        FALLBACK_MODEL_ID="stability.stable-image-core-v1:1",
    )
    queue(api)
    capsys.readouterr()
    with Stubber(aws.client("bedrock-runtime")) as stubber:
        stubber.add_client_error(
            "invoke_model",
            service_error_code="ResourceNotFoundException",
            service_message="This model version has reached the end of its life.",
            http_status_code=404,
            expected_params={"modelId": "amazon.nova-canvas-v1:0", "body": ANY, "contentType": ANY, "accept": ANY},
        )
        stubber.add_response(
            "invoke_model",
            {"body": bedrock_body({"seeds": [7], "finish_reasons": [None], "images": [PNG]}), "contentType": "x"},
            {"modelId": "stability.stable-image-core-v1:1", "body": ANY, "contentType": ANY, "accept": ANY},
        )

        assert drain(stack, worker) == {"handled": 1, "failed": 0}
        stubber.assert_no_pending_responses()

    assert table_item(stack, *TRIP_KEY)["imageStatus"] == "ready"
    emitted = metrics_emitted(capsys.readouterr().out)
    assert (metric_total(emitted, "ModelUnavailable"), metric_total(emitted, "FallbackModelUsed")) == (1, 1)


def test_a_job_sent_again_after_earlier_attempts_keeps_counting_them_and_reaches_the_dead_letter_queue(
    api, handler, stack, monkeypatch
):
    # Given a job handed back as a new message after four of its five attempts had failed
    queue(api, tripIds=["trip-euro"])
    (message,) = receive(stack)
    resent = {**message, "Body": json.dumps({**json.loads(message["Body"]), "earlierAttempts": 4, "deferrals": 1})}
    calls: list[object] = []

    def throttled(self, request):
        calls.append(request)
        raise TransientGenerationError("throttled", "ThrottlingException")

    monkeypatch.setattr(LocalImageProvider, "generate", throttled)
    worker = handler("worker")

    # When its new message is delivered for the first time, and fails: that was the job's fifth attempt
    response = worker.lambda_handler(sqs_event([resent], stack.arns["JobQueue"]), LambdaContext())

    # Then the record is failed with the reason, as on any last attempt, and the message is reported
    assert response["batchItemFailures"] == [{"itemIdentifier": resent["MessageId"]}]
    failed = table_item(stack, *TRIP_KEY)
    assert (failed["imageStatus"], failed["imageError"], len(calls)) == ("failed", "throttled", 1)

    # When SQS delivers it again (its own receive count 2: the job's sixth), it is passed straight back,
    # untouched, so that SQS's count takes it on to the dead-letter queue rather than the job running again
    again = {**resent, "Attributes": {**resent["Attributes"], "ApproximateReceiveCount": "2"}}
    response = worker.lambda_handler(sqs_event([again], stack.arns["JobQueue"]), LambdaContext())

    assert response["batchItemFailures"] == [{"itemIdentifier": again["MessageId"]}]
    assert table_item(stack, *TRIP_KEY) == failed and len(calls) == 1
