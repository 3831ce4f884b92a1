"""Operator commands (devtools/ops.py): the move task's exact request, --copy against moto, stack outputs."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.stub import Stubber

from devtools import ops
from devtools.template_resources import LocalStack, load_template

REGION = "us-east-1"
DLQ_ARN = "arn:aws:sqs:us-east-1:123456789012:image-recovery-JobDeadLetterQueue-abc"
JOB_QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:image-recovery-JobQueue-def"
DLQ_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/image-recovery-JobDeadLetterQueue-abc"
JOB_QUEUE_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/image-recovery-JobQueue-def"
OUTPUTS = {
    "JobQueueUrl": JOB_QUEUE_URL,
    "JobQueueArn": JOB_QUEUE_ARN,
    "DeadLetterQueueUrl": DLQ_URL,
    "DeadLetterQueueArn": DLQ_ARN,
}


def client(service: str):
    return boto3.client(service, region_name=REGION)


# ------------------------------------------------------------------ move task (Stubber: moto has none)
@pytest.mark.parametrize(("rate", "extra"), [(None, {}), (25, {"MaxNumberOfMessagesPerSecond": 25})])
def test_redrive_starts_a_move_task_from_the_dlq_to_the_job_queue(rate: int | None, extra: dict) -> None:
    sqs = client("sqs")
    with Stubber(sqs) as stub:
        stub.add_response(
            "start_message_move_task",
            {"TaskHandle": "handle-1"},
            {"SourceArn": DLQ_ARN, "DestinationArn": JOB_QUEUE_ARN, **extra},
        )
        assert ops.start_redrive(sqs, DLQ_ARN, JOB_QUEUE_ARN, rate=rate) == "handle-1"
        stub.assert_no_pending_responses()


def test_redrive_status_lists_the_dlq_move_tasks() -> None:
    sqs = client("sqs")
    task = {
        "TaskHandle": "handle-1",
        "Status": "RUNNING",
        "SourceArn": DLQ_ARN,
        "DestinationArn": JOB_QUEUE_ARN,
        "ApproximateNumberOfMessagesMoved": 3,
        "ApproximateNumberOfMessagesToMove": 23,
        "StartedTimestamp": 1767225600000,
    }
    with Stubber(sqs) as stub:
        stub.add_response("list_message_move_tasks", {"Results": [task]}, {"SourceArn": DLQ_ARN, "MaxResults": 10})
        assert ops.list_redrives(sqs, DLQ_ARN) == [task]


def test_main_redrive_prints_the_handle_and_the_dlq_depth(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sqs = client("sqs")
    stub = Stubber(sqs)
    stub.add_response(
        "get_queue_attributes",
        {"Attributes": {"ApproximateNumberOfMessages": "23"}},
        {"QueueUrl": DLQ_URL, "AttributeNames": ["ApproximateNumberOfMessages"]},
    )
    stub.add_response(
        "start_message_move_task",
        {"TaskHandle": "handle-7"},
        {"SourceArn": DLQ_ARN, "DestinationArn": JOB_QUEUE_ARN, "MaxNumberOfMessagesPerSecond": 5},
    )
    stub.activate()
    monkeypatch.setattr(ops, "stack_outputs", lambda _cfn, name: OUTPUTS if name == "image-recovery" else {})
    monkeypatch.setattr(boto3.session.Session, "client", lambda _self, service, **_: sqs if service == "sqs" else None)

    assert ops.main(["redrive", "--stack-name", "image-recovery", "--rate", "5"]) == 0

    out = capsys.readouterr().out
    assert "about 23 message(s)" in out
    assert "handle-7" in out
    stub.assert_no_pending_responses()


def test_main_rejects_a_rate_sqs_would_refuse(capsys: pytest.CaptureFixture[str]) -> None:
    assert ops.main(["redrive", "--stack-name", "s", "--rate", "501"]) == 2
    assert "--rate" in capsys.readouterr().err


# ------------------------------------------------------------------ stack outputs
def describe_stacks_response(outputs: dict[str, str]) -> dict:
    return {
        "Stacks": [
            {
                "StackName": "image-recovery",
                "CreationTime": "2026-01-01T00:00:00Z",
                "StackStatus": "UPDATE_COMPLETE",
                "Outputs": [{"OutputKey": k, "OutputValue": v} for k, v in outputs.items()],
            }
        ]
    }


def test_stack_outputs_are_read_from_describe_stacks() -> None:
    cloudformation = client("cloudformation")
    with Stubber(cloudformation) as stub:
        stub.add_response("describe_stacks", describe_stacks_response(OUTPUTS), {"StackName": "image-recovery"})
        outputs = ops.stack_outputs(cloudformation, "image-recovery")

    assert ops.require_outputs(outputs, ops.REDRIVE_OUTPUTS, "image-recovery") == OUTPUTS


def test_a_missing_output_names_itself_and_the_fix() -> None:
    cloudformation = client("cloudformation")
    older_stack = {k: v for k, v in OUTPUTS.items() if not k.endswith("Arn")}
    with Stubber(cloudformation) as stub:
        stub.add_response("describe_stacks", describe_stacks_response(older_stack), {"StackName": "image-recovery"})
        outputs = ops.stack_outputs(cloudformation, "image-recovery")

    with pytest.raises(ops.OpsError, match=r"no output JobQueueArn, DeadLetterQueueArn; deploy the current"):
        ops.require_outputs(outputs, ops.REDRIVE_OUTPUTS, "image-recovery")


def test_an_unknown_stack_is_a_clear_error() -> None:
    cloudformation = client("cloudformation")
    with Stubber(cloudformation) as stub:
        stub.add_client_error(
            "describe_stacks",
            service_error_code="ValidationError",
            service_message="Stack with id nope does not exist",
            http_status_code=400,
            expected_params={"StackName": "nope"},
        )
        with pytest.raises(ops.OpsError, match="cannot read stack 'nope': Stack with id nope does not exist"):
            ops.stack_outputs(cloudformation, "nope")


def test_main_reports_a_missing_output_without_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(ops, "stack_outputs", lambda _cfn, _name: {"JobQueueUrl": JOB_QUEUE_URL})

    assert ops.main(["redrive", "--stack-name", "old-stack", "--copy"]) == 2
    assert "error: stack 'old-stack' has no output JobQueueArn, DeadLetterQueueUrl, DeadLetterQueueArn" in (
        capsys.readouterr().err
    )


# ------------------------------------------------------------------ --copy (moto, queues from template.yaml)
def drain(sqs, url: str) -> list[dict]:
    received: list[dict] = []
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]).get(
        "Messages", []
    ):
        received.extend(batch)
        sqs.delete_message_batch(
            QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)]
        )
    return received


def queue_counts(sqs, url: str) -> tuple[int, int]:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]), int(attributes["ApproximateNumberOfMessagesNotVisible"])


def job_body(n: int) -> str:
    return json.dumps({"version": 1, "jobId": f"job-{n:02d}", "pk": "USER#u1", "sk": f"TRIP#t{n:02d}"})


def test_copy_moves_every_dead_letter_back_with_its_body(stack: LocalStack) -> None:
    sqs = client("sqs")
    dlq, jobs = stack.physical("JobDeadLetterQueue"), stack.physical("JobQueue")
    for n in range(23):
        sqs.send_message(
            QueueUrl=dlq,
            MessageBody=job_body(n),
            MessageAttributes={"origin": {"DataType": "String", "StringValue": f"test-{n}"}},
        )

    report = ops.copy_messages(sqs, dlq, jobs, wait_seconds=0)

    assert (report.moved, report.send_failed, report.delete_failed) == (23, 0, 0)
    assert queue_counts(sqs, dlq) == (0, 0)
    moved = drain(sqs, jobs)
    assert sorted(m["Body"] for m in moved) == sorted(job_body(n) for n in range(23))
    assert {m["MessageAttributes"]["origin"]["StringValue"] for m in moved} == {f"test-{n}" for n in range(23)}


def test_copy_stops_at_the_limit(stack: LocalStack) -> None:
    sqs = client("sqs")
    dlq, jobs = stack.physical("JobDeadLetterQueue"), stack.physical("JobQueue")
    for n in range(12):
        sqs.send_message(QueueUrl=dlq, MessageBody=job_body(n))

    report = ops.copy_messages(sqs, dlq, jobs, limit=5, wait_seconds=0)

    assert report.moved == 5
    assert queue_counts(sqs, dlq)[0] == 7
    assert len(drain(sqs, jobs)) == 5


def test_copy_deletes_only_what_was_sent() -> None:
    sqs = client("sqs")
    received = [
        {"MessageId": f"m{i}", "ReceiptHandle": f"r{i}", "Body": job_body(i), "MD5OfBody": "x"} for i in range(3)
    ]
    with Stubber(sqs) as stub:
        stub.add_response(
            "receive_message",
            {"Messages": received},
            {
                "QueueUrl": DLQ_URL,
                "MaxNumberOfMessages": 10,
                "WaitTimeSeconds": 0,
                "VisibilityTimeout": 120,
                "MessageAttributeNames": ["All"],
            },
        )
        stub.add_response(
            "send_message_batch",
            {
                "Successful": [
                    {"Id": "0", "MessageId": "n0", "MD5OfMessageBody": "x"},
                    {"Id": "2", "MessageId": "n2", "MD5OfMessageBody": "x"},
                ],
                "Failed": [{"Id": "1", "SenderFault": False, "Code": "InternalError", "Message": "try again"}],
            },
            {"QueueUrl": JOB_QUEUE_URL, "Entries": [{"Id": str(i), "MessageBody": job_body(i)} for i in range(3)]},
        )
        stub.add_response(
            "delete_message_batch",
            {"Successful": [{"Id": "0"}, {"Id": "1"}], "Failed": []},
            {"QueueUrl": DLQ_URL, "Entries": [{"Id": "0", "ReceiptHandle": "r0"}, {"Id": "1", "ReceiptHandle": "r2"}]},
        )
        stub.add_response("receive_message", {"Messages": []})

        report = ops.copy_messages(sqs, DLQ_URL, JOB_QUEUE_URL, wait_seconds=0)
        stub.assert_no_pending_responses()

    assert (report.moved, report.send_failed, report.delete_failed) == (2, 1, 0)
    assert report.errors == ["send m1: try again"]


def test_main_copy_against_the_local_stack(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sqs = client("sqs")
    outputs = {
        "JobQueueUrl": stack.physical("JobQueue"),
        "JobQueueArn": stack.arns["JobQueue"],
        "DeadLetterQueueUrl": stack.physical("JobDeadLetterQueue"),
        "DeadLetterQueueArn": stack.arns["JobDeadLetterQueue"],
    }
    for n in range(4):
        sqs.send_message(QueueUrl=outputs["DeadLetterQueueUrl"], MessageBody=job_body(n))
    monkeypatch.setattr(ops, "stack_outputs", lambda _cfn, _name: outputs)

    assert ops.main(["redrive", "--stack-name", "image-recovery", "--region", REGION, "--copy"]) == 0

    out = capsys.readouterr().out
    assert "about 4 message(s)" in out
    assert "moved 4 message(s) to the job queue (0 not sent, 0 sent but not deleted)" in out
    assert len(drain(sqs, outputs["JobQueueUrl"])) == 4


# ------------------------------------------------------------------ the task and stream dead-letter queues
# The record Lambda sends to an on-failure destination for a DynamoDB stream batch, as AWS documents it
# (https://docs.aws.amazon.com/lambda/latest/dg/services-dynamodb-errors.html).
STREAM_FAILURE = {
    "requestContext": {
        "requestId": "316aa6d0-8154-xmpl-9af7-85d5f4a6bc81",
        "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:image-recovery-IndexerFunction",
        "condition": "RetryAttemptsExhausted",
        "approximateInvokeCount": 6,
    },
    "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
    "version": "1.0",
    "timestamp": "2026-12-01T00:38:06.021Z",
    "DDBStreamBatchInfo": {
        "shardId": "shardId-00000001573689847184-864758bb",
        "startSequenceNumber": "800000000003126276362",
        "endSequenceNumber": "800000000003126276363",
        "approximateArrivalOfFirstRecord": "2026-12-01T00:38:04Z",
        "approximateArrivalOfLastRecord": "2026-12-01T00:38:05Z",
        "batchSize": 2,
        "streamArn": "arn:aws:dynamodb:us-east-1:123456789012:table/travel/stream/2026-01-01T00:00:00.000",
    },
}
TASK = {"version": 1, "kind": "repair-segment", "segment": 3, "totalSegments": 8, "startKey": {"PK": {"S": "x"}}}


def stack_outputs_of(stack: LocalStack) -> dict[str, str]:
    return {
        "JobQueueUrl": stack.physical("JobQueue"),
        "JobQueueArn": stack.arns["JobQueue"],
        "DeadLetterQueueUrl": stack.physical("JobDeadLetterQueue"),
        "DeadLetterQueueArn": stack.arns["JobDeadLetterQueue"],
        "TaskQueueUrl": stack.physical("TaskQueue"),
        "TaskQueueArn": stack.arns["TaskQueue"],
        "TaskDeadLetterQueueUrl": stack.physical("TaskDeadLetterQueue"),
        "TaskDeadLetterQueueArn": stack.arns["TaskDeadLetterQueue"],
        "StreamFailureQueueUrl": stack.physical("StreamFailureQueue"),
    }


def test_the_indexer_gives_up_into_a_queue_of_its_own_not_the_task_dead_letter_queue() -> None:
    template = load_template()
    event = template["Resources"]["IndexerFunction"]["Properties"]["Events"]["TravelTableStream"]["Properties"]
    assert event["DestinationConfig"]["OnFailure"]["Destination"] == {"Fn::GetAtt": ["StreamFailureQueue", "Arn"]}


def test_list_shows_each_dead_letter_in_a_line_and_moves_nothing(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sqs = client("sqs")
    outputs = stack_outputs_of(stack)
    job = {"version": 1, "jobId": "job-07", "batchId": "b-1", "pk": "USER#u1", "sk": "TRIP#t7"}
    sqs.send_message(QueueUrl=outputs["DeadLetterQueueUrl"], MessageBody=json.dumps(job | {"entityType": "TRIP"}))
    sqs.send_message(QueueUrl=outputs["TaskDeadLetterQueueUrl"], MessageBody=json.dumps(TASK))
    sqs.send_message(QueueUrl=outputs["StreamFailureQueueUrl"], MessageBody=json.dumps(STREAM_FAILURE))
    sqs.send_message(QueueUrl=outputs["StreamFailureQueueUrl"], MessageBody="not json at all")
    monkeypatch.setattr(ops, "stack_outputs", lambda _cfn, _name: outputs)

    lines = {}
    for queue in ("jobs", "tasks", "stream"):
        assert ops.main(["redrive", "--stack-name", "s", "--region", REGION, "--queue", queue, "--list"]) == 0
        lines[queue] = capsys.readouterr().out

    assert "job job-07 of batch b-1: trip" in lines["jobs"] and "(USER#u1 / TRIP#t7)" in lines["jobs"]
    assert "task repair-segment: version=1, segment=3, totalSegments=8" in lines["tasks"]
    assert "stream batch of 2 record(s) given up on (RetryAttemptsExhausted)" in lines["stream"]
    assert "800000000003126276362 to 800000000003126276363" in lines["stream"]
    assert "not JSON: 'not json at all'" in lines["stream"]
    assert "2 message(s) shown" in lines["stream"]
    # looking moved nothing: every message is still there, and visible
    assert queue_counts(sqs, outputs["DeadLetterQueueUrl"]) == (1, 0)
    assert queue_counts(sqs, outputs["TaskDeadLetterQueueUrl"]) == (1, 0)
    assert queue_counts(sqs, outputs["StreamFailureQueueUrl"]) == (2, 0)


def test_copy_moves_task_dead_letters_back_to_the_task_queue(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sqs = client("sqs")
    outputs = stack_outputs_of(stack)
    for segment in range(3):
        sqs.send_message(
            QueueUrl=outputs["TaskDeadLetterQueueUrl"], MessageBody=json.dumps(TASK | {"segment": segment})
        )
    monkeypatch.setattr(ops, "stack_outputs", lambda _cfn, _name: outputs)

    assert ops.main(["redrive", "--stack-name", "s", "--region", REGION, "--queue", "tasks", "--copy"]) == 0

    assert "moved 3 message(s) to the task queue" in capsys.readouterr().out
    assert sorted(json.loads(m["Body"])["segment"] for m in drain(sqs, outputs["TaskQueueUrl"])) == [0, 1, 2]
    assert queue_counts(sqs, outputs["DeadLetterQueueUrl"]) == (0, 0)
    assert queue_counts(sqs, outputs["JobQueueUrl"]) == (0, 0)


def test_stream_failures_cannot_be_redriven_and_say_what_to_do(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(ops, "stack_outputs", lambda _cfn, _name: {"StreamFailureQueueUrl": "https://q"})
    monkeypatch.setattr(boto3.session.Session, "client", lambda _self, service, **_: None)

    assert ops.main(["redrive", "--stack-name", "s", "--queue", "stream"]) == 2

    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "cannot be redriven" in error and "StreamFailuresAlarm" in error


@pytest.mark.parametrize("argument", [["--limit", "0"], ["--limit", "-3"], ["--rate", "0"], ["--limit", "many"]])
def test_a_limit_or_rate_below_one_is_refused_before_anything_runs(argument, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        ops.main(["redrive", "--stack-name", "s", "--copy", *argument])
    assert exit_.value.code == 2
    assert argument[0] in capsys.readouterr().err


def test_missing_credentials_are_one_line_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")

    assert ops.main(["redrive", "--stack-name", "s", "--region", REGION]) == 2

    assert capsys.readouterr().err == "error: Unable to locate credentials\n"


def test_a_refused_move_task_is_one_line_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sqs = client("sqs")
    stub = Stubber(sqs)
    stub.add_response("get_queue_attributes", {"Attributes": {"ApproximateNumberOfMessages": "4"}})
    stub.add_client_error(
        "start_message_move_task",
        service_error_code="UnsupportedOperation",
        service_message="There is already a task running. Only one active task is allowed for each source queue.",
        http_status_code=400,
    )
    stub.activate()
    monkeypatch.setattr(ops, "stack_outputs", lambda _cfn, _name: OUTPUTS)
    monkeypatch.setattr(boto3.session.Session, "client", lambda _self, service, **_: sqs)

    assert ops.main(["redrive", "--stack-name", "s"]) == 2

    assert capsys.readouterr().err == (
        "error: StartMessageMoveTask refused: UnsupportedOperation: There is already a task running."
        " Only one active task is allowed for each source queue.\n"
    )


# ------------------------------------------------------------------ teardown
def test_teardown_without_yes_changes_nothing_and_says_what_stays(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    outputs = {"PanelBucketName": "panel", "TravelTableName": "travel", "ImageBucketName": "images"}
    monkeypatch.setattr(ops, "stack_outputs", lambda _cfn, _name: outputs)
    cloudformation = client("cloudformation")
    stub = Stubber(cloudformation)  # no response queued: any call but the (patched) outputs read fails the test
    stub.activate()
    monkeypatch.setattr(boto3.session.Session, "client", lambda _self, service, **_: cloudformation)

    assert ops.main(["teardown", "--stack-name", "image-recovery-dev"]) == 0

    out = capsys.readouterr().out
    assert "TravelTable: the travel table" in out and "(travel)" in out
    assert "ImageBucket: the image bucket" in out and "(images)" in out
    assert "nothing changed (a dry run)" in out


def test_teardown_empties_the_panel_bucket_versions_included_then_deletes_the_stack(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    s3 = client("s3")
    panel = stack.physical("PanelBucket")
    s3.put_bucket_versioning(Bucket=panel, VersioningConfiguration={"Status": "Enabled"})  # the worst case
    for name in ("index.html", "app.js", "index.html"):
        s3.put_object(Bucket=panel, Key=name, Body=b"x")
    s3.delete_object(Bucket=panel, Key="app.js")  # a delete marker too
    images = stack.physical("ImageBucket")
    s3.put_object(Bucket=images, Key="images/u/trip/t/j.png", Body=b"png")
    cloudformation = client("cloudformation")
    stub = Stubber(cloudformation)
    stub.add_response(
        "describe_stacks", describe_stacks_response({"PanelBucketName": panel, "ImageBucketName": images})
    )
    stub.add_response("delete_stack", {}, {"StackName": "image-recovery-dev"})
    gone = describe_stacks_response({})
    gone["Stacks"][0]["StackStatus"] = "DELETE_COMPLETE"
    stub.add_response("describe_stacks", gone, {"StackName": "image-recovery-dev"})  # the waiter's first look
    stub.activate()
    clients = {"cloudformation": cloudformation, "s3": s3}
    monkeypatch.setattr(boto3.session.Session, "client", lambda _self, service, **_: clients[service])

    assert ops.main(["teardown", "--stack-name", "image-recovery-dev", "--yes"]) == 0

    stub.assert_no_pending_responses()
    assert s3.list_object_versions(Bucket=panel).get("Versions", []) == []
    assert s3.list_object_versions(Bucket=panel).get("DeleteMarkers", []) == []
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=images)["Contents"]] == ["images/u/trip/t/j.png"]  # kept
    out = capsys.readouterr().out
    assert f"emptied the panel bucket {panel}: 4 object(s)" in out
    assert "stack image-recovery-dev deleted" in out


def test_a_stack_that_fails_to_delete_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cloudformation = client("cloudformation")
    stub = Stubber(cloudformation)
    stub.add_response("describe_stacks", describe_stacks_response({}))
    stub.add_response("delete_stack", {})
    failed = describe_stacks_response({})
    failed["Stacks"][0]["StackStatus"] = "DELETE_FAILED"
    stub.add_response("describe_stacks", failed)
    stub.activate()
    monkeypatch.setattr(boto3.session.Session, "client", lambda _self, service, **_: cloudformation)

    assert ops.main(["teardown", "--stack-name", "image-recovery-dev", "--yes"]) == 2

    error = capsys.readouterr().err
    assert error.startswith("error: Waiter StackDeleteComplete failed") and error.count("\n") == 1
