"""Small helpers shared by the integration tests."""

from __future__ import annotations

import functools
import json
import os
from types import ModuleType
from typing import Any

import boto3
from boto3.dynamodb.types import TypeDeserializer

from devtools.lambda_runtime import LambdaContext
from devtools.template_resources import LocalStack

REGION = "us-east-1"

# `make soak` sets SOAK=1: the chaos, race, fuzz and property tests (marker `soak`) run at their large sizes.
SOAK = os.environ.get("SOAK", "").strip() not in ("", "0")


def sized(ci: int, soak: int) -> int:
    """The size of a chaos, race, fuzz or property run: `ci` in `make test` and CI, `soak` under `make soak`."""
    return soak if SOAK else ci


def aws_client(service: str) -> Any:
    """A boto3 client for whatever AWS the test runs against: moto in-process, or the embedded moto server
    that AWS_ENDPOINT_URL points at. Made once per endpoint and reused: making a client costs more than the
    call a helper makes with it (the race test reads a record back 160 times a round)."""
    return _client(service, os.environ.get("AWS_ENDPOINT_URL"))


@functools.lru_cache(maxsize=64)
def _client(service: str, endpoint: str | None) -> Any:
    return boto3.client(service, region_name=REGION, endpoint_url=endpoint)


def call_api(api: ModuleType, event: dict) -> tuple[int, dict]:
    """Invoke the API handler; return (status, parsed JSON body)."""
    response = api.lambda_handler(event, LambdaContext())
    assert response["headers"]["Content-Type"] == "application/json"
    return response["statusCode"], json.loads(response["body"])


_DESERIALIZER = TypeDeserializer()


def table_item(stack: LocalStack, pk: str, sk: str) -> dict | None:
    """One travel-table item as plain Python values (None where DynamoDB holds NULL)."""
    raw = (
        aws_client("dynamodb")
        .get_item(TableName=stack.physical("TravelTable"), Key={"PK": {"S": pk}, "SK": {"S": sk}}, ConsistentRead=True)
        .get("Item")
    )
    return {k: _DESERIALIZER.deserialize(v) for k, v in raw.items()} if raw else None


def queued_jobs(stack: LocalStack) -> list[dict]:
    """Bodies of every message waiting on the job queue (received with a zero visibility timeout)."""
    sqs = aws_client("sqs")
    url = stack.physical("JobQueue")
    waiting = int(
        sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"][
            "ApproximateNumberOfMessages"
        ]
    )
    seen: dict[str, dict] = {}
    for _ in range(100):
        if len(seen) >= waiting:
            break
        for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0)["Messages"]:
            seen[message["MessageId"]] = json.loads(message["Body"])
    return list(seen.values())


def take_messages(stack: LocalStack, logical_id: str = "JobQueue") -> list[dict]:
    """Take every message off a queue and return their bodies (counted by the test, not worked on)."""
    sqs = aws_client("sqs")
    url = stack.physical(logical_id)
    bodies = []
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
        bodies.extend(json.loads(m["Body"]) for m in batch)
        sqs.delete_message_batch(
            QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)]
        )
    return bodies


def metrics_emitted(captured: str) -> list[dict]:
    """The CloudWatch EMF documents Powertools printed to stdout (one JSON line each)."""
    return [json.loads(line) for line in captured.splitlines() if line.startswith('{"_aws"')]


def metric_total(emitted: list[dict], name: str, **dimensions: str) -> float:
    """The sum of one metric over EMF documents, only those whose dimensions include `dimensions`."""
    return sum(
        value
        for document in emitted
        if all(document.get(key) == wanted for key, wanted in dimensions.items())
        for value in (document.get(name) if isinstance(document.get(name), list) else [document.get(name, 0)])
    )


def drained(total: int, succeeded: int, failed: int = 0) -> dict:
    """A batch's progress once its jobs have all ended (compare with `progress | {"batchId": None}`)."""
    return {
        "batchId": None,
        "total": total,
        "queued": 0,
        "generating": 0,
        "succeeded": succeeded,
        "failed": failed,
        "complete": True,
    }
