"""Unit-test fixtures: one moto stack per test module, emptied between tests (cheaper than a stack per test)."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from devtools.template_resources import LocalStack, build_stack
from image_recovery import aws, models

REGION = "us-east-1"
_KEYS = {"TravelTable": ("PK", "SK"), "BatchTable": ("batchId",)}


@pytest.fixture(scope="module")
def module_stack() -> Iterator[LocalStack]:
    """tests/conftest.py's `stack`, built once per module. Tests that write use `tables`, which cleans up."""
    with pytest.MonkeyPatch.context() as patch, mock_aws():
        for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
            patch.delenv(name, raising=False)
        patch.setenv("AWS_ACCESS_KEY_ID", "testing")
        patch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        aws.reset()
        yield build_stack(region=REGION)
        aws.reset()


@pytest.fixture
def tables(module_stack: LocalStack) -> Iterator[LocalStack]:
    """The module's stack with the models bound to it; the travel and batch tables are emptied afterwards."""
    models.bind(
        travel_table=module_stack.physical("TravelTable"),
        batch_table=module_stack.physical("BatchTable"),
        region=REGION,
    )
    yield module_stack
    client = boto3.client("dynamodb", region_name=REGION)
    for logical_id, key_names in _KEYS.items():
        table = module_stack.physical(logical_id)
        for item in client.scan(TableName=table, ConsistentRead=True)["Items"]:
            client.delete_item(TableName=table, Key={k: item[k] for k in key_names})
