"""Shared fixtures: moto in-process, resources from template.yaml, real handlers loaded per test."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from types import ModuleType

import boto3
import pytest
from moto import mock_aws

from devtools.lambda_runtime import LambdaContext, load_handler, sqs_event
from devtools.seed import put_items, sample_items
from devtools.template_resources import LocalStack, build_stack
from image_recovery import aws

REGION = "us-east-1"
FUNCTIONS = {"api": "ApiFunction", "worker": "WorkerFunction", "sweep": "SweepFunction"}


@pytest.fixture(autouse=True)
def aws_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials and no real endpoint, whatever the developer's shell has set."""
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    monkeypatch.setenv("POWERTOOLS_DEV", "false")


@pytest.fixture
def stack() -> Iterator[LocalStack]:
    with mock_aws():
        aws.reset()
        yield build_stack(region=REGION)
        aws.reset()


@pytest.fixture
def seeded(stack: LocalStack) -> LocalStack:
    put_items(stack.physical("TravelTable"), sample_items(), region=REGION)
    return stack


@pytest.fixture
def handler(stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> Callable[..., ModuleType]:
    """Load functions/<name>/app.py with the environment the template gives that function."""

    def load(name: str, **overrides: str) -> ModuleType:
        environment = stack.function_environment(FUNCTIONS[name])
        if name == "worker":
            environment["IMAGE_PROVIDER"] = "local"
        environment.update(overrides)
        for key, value in environment.items():
            monkeypatch.setenv(key, value)
        return load_handler(name)

    return load


@pytest.fixture
def context() -> LambdaContext:
    return LambdaContext()


def call_api(api: ModuleType, event: dict) -> tuple[int, dict]:
    """Invoke the API handler; return (status, parsed JSON body)."""
    response = api.lambda_handler(event, LambdaContext())
    return response["statusCode"], json.loads(response["body"]) if response.get("body") else {}


def receive_all(stack: LocalStack, logical_id: str = "JobQueue") -> list[dict]:
    """Every message waiting on a queue (received, so invisible until their timeout)."""
    sqs = boto3.client("sqs", region_name=REGION)
    messages: list[dict] = []
    while batch := sqs.receive_message(
        QueueUrl=stack.physical(logical_id), MaxNumberOfMessages=10, AttributeNames=["All"]
    ).get("Messages", []):
        messages.extend(batch)
    return messages


def drain(stack: LocalStack, worker: ModuleType) -> list[dict]:
    """Run the worker on the queue until it is empty, deleting what it reports done, like the SQS poller."""
    sqs = boto3.client("sqs", region_name=REGION)
    url = stack.physical("JobQueue")
    responses = []
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=5, AttributeNames=["All"]).get(
        "Messages", []
    ):
        response = worker.lambda_handler(sqs_event(messages, stack.arns["JobQueue"]), LambdaContext())
        failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
        done = [m for m in messages if m["MessageId"] not in failed]
        if done:
            sqs.delete_message_batch(
                QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)]
            )
        responses.append(response)
        if failed:
            break  # the failed ones stay invisible until their visibility timeout; the caller decides
    return responses
