"""Shared fixtures: moto in-process, resources from template.yaml, real handlers loaded per test."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from types import ModuleType

import pytest
from moto import mock_aws

from devtools import moto_requests, speedups
from devtools.lambda_runtime import LambdaContext, load_handler
from devtools.seed import put_items, sample_items
from devtools.streams import LocalStream
from devtools.template_resources import LocalStack, build_stack
from image_recovery import aws, recovery
from image_recovery.observability import metrics

REGION = "us-east-1"

speedups.apply()  # botocore's service data parsed once per process, one KMS key pair (see devtools/speedups.py)
moto_requests.serialize()  # each moto request atomic, as AWS's are, whatever threads call it


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """One id per test. pytest 9.2 builds an item's id from its function name and parametrization only, so
    schemathesis' items (one per API operation, named `test[GET /styles]` but not parametrized) all got the
    bare function's id: reports could not tell them apart, and pytest-xdist's file scheduler, which keys
    work by id, ran one of the four. Their ids get the operation back; any id that still repeats stops the
    run rather than letting a test go missing."""
    repeated = {nodeid for nodeid, count in Counter(item.nodeid for item in items).items() if count > 1}
    for item in items:
        label = item.name.partition("[")[2].removesuffix("]")
        if item.nodeid in repeated and label and item._id.params is None:
            item._id = item._id.with_params(label)
    still = sorted(nodeid for nodeid, count in Counter(item.nodeid for item in items).items() if count > 1)
    if still:
        raise pytest.UsageError(f"tests share an id, so some would not run under pytest-xdist: {still}")


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


@pytest.fixture(autouse=True)
def fresh_metrics() -> Iterator[None]:
    """One Metrics object lives per process (per container on Lambda): start each test with an empty buffer."""
    metrics.clear_metrics()
    yield
    metrics.clear_metrics()


@pytest.fixture
def stack() -> Iterator[LocalStack]:
    with mock_aws():
        aws.reset()
        yield build_stack(region=REGION)
        aws.reset()


@pytest.fixture
def handler(stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> Callable[..., ModuleType]:
    """Load functions/<name>/app.py with the environment the template gives that function."""

    def load(name: str, **overrides: str) -> ModuleType:
        environment = stack.function_environment(stack.function_logical_ids()[name])
        if name in ("worker", "sweep"):  # offline: the local renderer, and no Bedrock model lifecycle to check
            environment["IMAGE_PROVIDER"] = "local"
        environment.update(overrides)
        for key, value in environment.items():
            monkeypatch.setenv(key, value)
        return load_handler(name)

    return load


@pytest.fixture
def past_the_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every partition is larger than the listing's probe (it reads one item), so that a listing with a complete
    index takes the index plan with a test's few records, as it does for a user with thousands."""
    monkeypatch.setattr(recovery, "PARTITION_PROBE_ITEMS", 1)


@pytest.fixture
def deliver_stream(stack: LocalStack, handler: Callable[..., ModuleType]) -> Callable[[], int]:
    """Deliver the travel table's pending stream records to the real indexer handler, as Lambda would."""
    stream = LocalStream(stack)
    indexer: ModuleType | None = None

    def deliver() -> int:
        nonlocal indexer
        indexer = indexer or handler("indexer")
        return stream.deliver(indexer)

    return deliver


@pytest.fixture
def seeded(stack: LocalStack, deliver_stream: Callable[[], int]) -> LocalStack:
    """The sample data, written the way the host app writes, and seen by the indexer through the stream."""
    put_items(stack.physical("TravelTable"), sample_items(), region=REGION)
    deliver_stream()
    return stack


@pytest.fixture
def context() -> LambdaContext:
    return LambdaContext()


@pytest.fixture
def world(stack: LocalStack) -> Callable[[], dict]:
    """A snapshot of everything the service can write, to prove that a request changed nothing."""
    import boto3

    dynamodb = boto3.client("dynamodb", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)

    def snapshot() -> dict:
        tables = {
            name: sorted(
                json.dumps(item, sort_keys=True)
                for item in dynamodb.scan(TableName=stack.physical(name), ConsistentRead=True)["Items"]
            )
            for name in ("TravelTable", "BatchTable", "IdempotencyTable")
        }
        queued = sqs.get_queue_attributes(
            QueueUrl=stack.physical("JobQueue"), AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]["ApproximateNumberOfMessages"]
        return {"tables": tables, "messages": int(queued)}

    return snapshot
