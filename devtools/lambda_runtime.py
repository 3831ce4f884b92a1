"""Run the real handlers the way Lambda would: fresh module per load, a context object, AWS-shaped events."""

from __future__ import annotations

import copy
import importlib.util
import json
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ROOT / "events"


@dataclass
class LambdaContext:
    function_name: str = "image-recovery-local"
    memory_limit_in_mb: int = 512
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:image-recovery-local"
    remaining_ms: int = 180_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def load_handler(function: str) -> ModuleType:
    """Import functions/<function>/app.py as a new module, running its cold start like a new container."""
    path = ROOT / "functions" / function / "app.py"
    name = f"image_recovery_function_{function}_{uuid.uuid4().hex}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def load_event(name: str) -> dict:
    """A sample event from events/ (the same files `sam local invoke -e` uses)."""
    return json.loads((EVENTS / name).read_text())


def http_event(name: str, *, sub: str | None = None, body: Any = None, path_parameters: dict | None = None) -> dict:
    """An events/ API sample, re-addressed to another user, body or path parameter where asked."""
    event = copy.deepcopy(load_event(name))
    if sub is not None:
        event["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] = sub
    if body is not None:
        event["body"] = body if isinstance(body, str) else json.dumps(body)
        event["isBase64Encoded"] = False
    if path_parameters:
        event["pathParameters"] = path_parameters
        path = event["routeKey"].split(" ", 1)[1].format(**path_parameters)
        event["rawPath"] = event["requestContext"]["http"]["path"] = path
    return event


def sqs_event(messages: list[dict], queue_arn: str) -> dict:
    """Turn ReceiveMessage output into the event Lambda's SQS poller delivers."""
    records = []
    for message in messages:
        attributes = message.get("Attributes", {})
        records.append(
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": {
                    "ApproximateReceiveCount": attributes.get("ApproximateReceiveCount", "1"),
                    "SentTimestamp": attributes.get("SentTimestamp", "0"),
                    "SenderId": attributes.get("SenderId", "AIDAEXAMPLE"),
                    "ApproximateFirstReceiveTimestamp": attributes.get("ApproximateFirstReceiveTimestamp", "0"),
                },
                "messageAttributes": {},
                "md5OfBody": message["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": queue_arn.split(":")[3],
            }
        )
    return {"Records": records}


def drain_queue(queue_url: str, queue_arn: str, worker: ModuleType, *, region: str, batch_size: int = 5) -> dict:
    """Feed a queue to the worker until it is empty, as Lambda's SQS poller does.

    Messages the worker reports as failed stay on the queue (invisible until their visibility timeout),
    so draining stops at the first batch with failures and reports them.
    """
    import boto3

    sqs = boto3.client("sqs", region_name=region)
    handled = failed = 0
    while messages := sqs.receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=batch_size, AttributeNames=["All"]
    ).get("Messages", []):
        response = worker.lambda_handler(sqs_event(messages, queue_arn), LambdaContext())
        failures = {f["itemIdentifier"] for f in response["batchItemFailures"]}
        done = [m for m in messages if m["MessageId"] not in failures]
        if done:
            sqs.delete_message_batch(
                QueueUrl=queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
            )
        handled += len(done)
        failed += len(failures)
        if failures:
            break
    return {"handled": handled, "failed": failed}
